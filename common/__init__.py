"""Plumbing shared by every package and command: file-system safety (``common.fs``)."""
