"""``manifest.json``: what an index directory holds and how it was made, plus integrity checks.

Every file of the directory (except the manifest itself) is listed with its size and sha256. Loading
always compares sizes (cheap: catches truncation and missing files) and compares hashes on request.
"""

from __future__ import annotations

import json
import math
import platform
import sqlite3
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from common.fs import atomic_write, sha256_file

from .errors import IndexLoadError

MANIFEST_FILE = "manifest.json"
FORMAT = "lstm-dssm-index"
FORMAT_VERSION = 1


def list_files(directory: Path) -> dict[str, dict[str, Any]]:
    """{relative posix path: {"size", "sha256"}} for every file under ``directory`` but the manifest."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if p.is_file() and rel != MANIFEST_FILE:
            out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for dist in ("faiss-cpu", "numpy", "torch", "bm25s", "PyStemmer"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` via a temporary file and rename (never a half-written manifest)."""
    atomic_write(directory / MANIFEST_FILE, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())


def read_manifest(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise IndexLoadError(f"index directory not found: {directory}")
    p = directory / MANIFEST_FILE
    if not p.is_file():
        raise IndexLoadError(f"{p}: missing (not an index directory, or its build did not finish)")
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexLoadError(f"{p}: not valid JSON ({e})") from e
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise IndexLoadError(f"{p}: not an LSTM-DSSM index manifest (format={m.get('format') if isinstance(m, dict) else None!r})")
    if m.get("format_version") != FORMAT_VERSION:
        raise IndexLoadError(
            f"{p}: index format version {m.get('format_version')!r}, this code reads {FORMAT_VERSION}; rebuild the index"
        )
    if not isinstance(m.get("files"), dict):
        raise IndexLoadError(f"{p}: no 'files' list")
    return m


def check_files(directory: Path, manifest: dict[str, Any], required: tuple[str, ...], verify_hashes: bool) -> None:
    """Raise :class:`IndexLoadError` naming the first missing, truncated or corrupted file."""
    files: dict[str, dict[str, Any]] = manifest["files"]
    for name in required:
        if name not in files:
            raise IndexLoadError(f"{directory / MANIFEST_FILE}: does not list {name}")
    for rel, info in files.items():
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise IndexLoadError(f"{directory / MANIFEST_FILE}: bad file path {rel!r}")
        p = directory / rel
        if not p.is_file():
            raise IndexLoadError(f"{p}: missing (listed in {MANIFEST_FILE})")
        size = p.stat().st_size
        if size != info.get("size"):
            raise IndexLoadError(
                f"{p}: {size} bytes but {MANIFEST_FILE} says {info.get('size')} (truncated or overwritten); rebuild the index"
            )
        if verify_hashes and sha256_file(p) != info.get("sha256"):
            raise IndexLoadError(f"{p}: sha256 does not match {MANIFEST_FILE} (corrupted); rebuild the index")


def _is_int(v: Any, lo: int, hi: int | None = None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_manifest_fields(manifest: dict[str, Any]) -> str | None:
    """Why the fields ``SearchIndex.load`` and the searches read cannot be used, or None.

    Everything is checked at load so that a damaged or hand-edited manifest is refused with a reason
    (a failed reload, the old pair serving) instead of loading and then failing every search. The
    fusion method and weights are ``index.fusion.check_fusion``'s; this adds what it does not check.
    """
    m = manifest
    if not _is_int(m.get("dim"), 1, 1 << 16):
        return f"dim must be a positive integer, got {m.get('dim')!r}"
    if not _is_int(m.get("documents"), 0):  # 0: an empty index (build_index.py --empty), filled by writes
        return f"documents must be a non-negative integer, got {m.get('documents')!r}"
    model = m.get("model")
    if not isinstance(model, dict):
        return "model must be an object"
    if not isinstance(model.get("fingerprint"), str):
        return f"model.fingerprint must be a string, got {model.get('fingerprint')!r}"
    if model.get("lang") not in ("en", "zh"):
        return f"model.lang must be en or zh, got {model.get('lang')!r}"
    index = m.get("index")
    if not isinstance(index, dict) or not isinstance(index.get("type"), str):
        return "index.type must be a string"
    search = index.get("search", {})
    if not isinstance(search, dict):
        return "index.search must be an object"
    for key, value in search.items():
        # efSearch / nprobe (or a factory string's parameter): FAISS takes positive integers.
        if not _is_int(value, 1, 1 << 31):
            return f"index.search.{key} must be a positive integer, got {value!r}"
    bm25 = m.get("bm25")
    if bm25 is not None:
        d = bm25.get("dir") if isinstance(bm25, dict) else None
        if not isinstance(d, str) or not d or d.startswith("/") or ".." in Path(d).parts:
            return f"bm25.dir must be a relative folder inside the index, got {d!r}"
    fusion = m.get("fusion")
    if isinstance(fusion, dict):
        if "depth" in fusion and not _is_int(fusion["depth"], 1, 100_000):
            return f"fusion.depth must be an integer from 1 to 100000, got {fusion['depth']!r}"
        for key in ("k", "weight"):
            if key in fusion and not _is_number(fusion[key]):
                return f"fusion.{key} must be a finite number, got {fusion[key]!r}"
    for rel, info in m["files"].items():
        if not isinstance(rel, str) or not isinstance(info, dict) or not _is_int(info.get("size"), 0):
            return f"files.{rel} must be an object with an integer size"
    return None
