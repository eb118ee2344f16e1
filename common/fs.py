"""File-system safety, in one place: atomic folder writes, file hashes, and the guard that refuses to
replace a folder that is not ours.

Every artifact folder (a model, an index, a dataset) is written the same way: into a fresh temporary
folder beside the target (same file system, so the final rename is atomic), flushed, then swapped in.
A crash at any moment leaves either the old folder or the new one, never a half-written one. One
permission policy for all of them: folders and files readable by everyone the umask allows (a folder
is shared data, read by a service that may run as another user, e.g. a container's).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class ForeignFolderError(ValueError):
    """The target exists and is not a folder of the kind the caller writes: it is never replaced."""


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_files(paths: list[tuple[str, Path]]) -> str:
    """One sha256 over several (name, path) files: each name, then its bytes (a model's fingerprint)."""
    h = hashlib.sha256()
    for name, p in paths:
        h.update(name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write one file atomically: a temporary file beside it, flushed, then renamed over it."""
    target = Path(path)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def share(path: Path) -> None:
    """The one permission policy: a folder 0777 & ~umask (mkdtemp makes it 0700, private)."""
    path.chmod(0o777 & ~_umask())


def fsync_tree(directory: Path) -> None:
    """Flush every file and folder under ``directory`` (deepest first), so the renamed folder is
    complete on disk even after a power cut."""
    for p in sorted(directory.rglob("*"), reverse=True) + [directory]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_dir(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``; an existing ``target`` is moved aside first and removed after.

    Two renames: a kill exactly between them leaves the old folder as ``.NAME.old-PID`` beside NAME.
    """
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None and not target.exists():
            os.replace(old, target)  # put the previous folder back: never neither
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def guard_target(target: Path, is_ours: Callable[[Path], bool], what: str) -> None:
    """Refuse to replace anything but an empty folder or a folder ``is_ours`` recognises: the write swaps
    the whole folder, and a mistyped output path (a home or data folder) must never be deleted."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ForeignFolderError(f"{target}: exists and is not a directory; choose another output path")
    if target.is_dir() and any(target.iterdir()) and not is_ours(target):
        raise ForeignFolderError(
            f"{target}: exists and is not {what}; refusing to replace it: choose an empty or new output path"
        )


@contextmanager
def atomic_dir(target: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Write a folder atomically: yields a fresh temporary folder beside ``target``; when the block ends
    without an exception it is flushed (``durable``), shared (the permission policy) and swapped in;
    on any exception (Ctrl-C included) it is removed and ``target`` is left as it was.

        with atomic_dir(out) as tmp:
            (tmp / "a.json").write_text(...)
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if durable:
            fsync_tree(tmp)
        share(tmp)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
