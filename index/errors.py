"""Errors of the index package; each message names the file or setting at fault."""

from __future__ import annotations


class IndexBuildError(ValueError):
    """An index cannot be built from these inputs (bad index type, too few documents to train …)."""


class IndexLoadError(Exception):
    """An index directory that is missing, incomplete, truncated or corrupted; the message names the file."""


class IndexMismatchError(IndexLoadError):
    """An index built by another model (other fingerprint or other dimension) than the one given."""


class IndexWriteError(Exception):
    """A write to a live index that was not applied (nothing of it is kept); the message says why."""


class IndexReadOnlyError(IndexWriteError):
    """The live index cannot take writes: its folder or database is on a read-only volume."""


class IndexFullError(IndexWriteError):
    """The disk (or the database's size limit) is full: the write was rolled back, not acknowledged."""
