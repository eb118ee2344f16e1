"""Shared command-line plumbing: clear one-line errors instead of tracebacks."""

from __future__ import annotations

import sys
from collections.abc import Callable

from common.fs import ForeignFolderError
from models.data import DataError
from models.io import ModelDirError


class UsageError(Exception):
    """A problem with the command line or the file system that the user can fix."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run ``main``; known errors print ``error: …`` and exit 2, Ctrl-C exits 130."""
    try:
        sys.exit(main() or 0)
    except (DataError, ModelDirError, UsageError, ForeignFolderError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
