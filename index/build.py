"""Offline index build: corpus → document store, document vectors, FAISS index, BM25 index, manifest.

Everything is written into a temporary directory beside the target, checked (hashes included) and
renamed into place at the end: an interrupted build (Ctrl-C, kill -9) leaves the previous index as
it was. A killed build can leave a ``.NAME.tmp-*`` directory beside NAME, safe to delete.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from models.bm25 import BM25
from models.data import Corpus, DataError, Qrels, check_qrels, load_corpus, load_qrels, load_queries
from models.encoder import Encoder
from models.io import atomic_dir, replace_dir

from .dense import FAISS_FILE, VECTORS_FILE, build_faiss, make_empty, resolve_spec
from .errors import IndexBuildError
from .fusion import DEFAULT_FUSION, DEPTH, choose_fusion
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST_FILE, library_versions, list_files, write_manifest
from .search import BM25_DIR, SearchIndex
from .store import STORE_FILE, write_store

BM25_TOKENIZERS = {
    "en": "bm25s.tokenize(stopwords='en', stemmer=Stemmer('english'))",
    "zh": "every character + every overlapping two-character window",
}


def dedupe(corpus: Corpus, source: str | os.PathLike, policy: str) -> tuple[Corpus, int]:
    """Handle repeated ids: ``error`` (default) names the first one; ``first`` keeps each id's first
    document. Returns the corpus and how many documents were dropped."""
    seen: dict[str, int] = {}
    dups: list[tuple[str, int, int]] = []
    for i, did in enumerate(corpus.ids):
        if did in seen:
            dups.append((did, seen[did], i))
        else:
            seen[did] = i
    if not dups:
        return corpus, 0
    if policy == "error":
        did, a, b = dups[0]
        raise DataError(
            f"{source}: duplicate document id {did!r} (documents #{a + 1} and #{b + 1}; {len(dups)} repeat(s) in all); "
            "fix the corpus, or keep the first document of each id with --on-duplicate-id first"
        )
    if policy != "first":
        raise ValueError(f"on_duplicate_id must be 'error' or 'first', got {policy!r}")
    keep = sorted(seen.values())
    return Corpus(
        [corpus.ids[i] for i in keep], [corpus.titles[i] for i in keep], [corpus.texts[i] for i in keep],
        [corpus.metadata[i] for i in keep],
    ), len(dups)


def load_dev(folder: str | os.PathLike, doc_ids: set[str]) -> tuple[dict[str, str], Qrels]:
    """Dev queries and qrels of a BEIR folder, checked against the corpus being indexed."""
    d = Path(folder)
    qp = d / "qrels" / "dev.tsv"
    if not qp.is_file():
        raise DataError(f"{qp}: not found (dev data must be a BEIR folder with qrels/dev.tsv and queries.jsonl)")
    queries = load_queries(d / "queries.jsonl")
    qrels = load_qrels(qp)
    if not qrels:
        raise DataError(f"{qp}: no judged pairs")
    check_qrels(qp, qrels, queries, doc_ids, str(d / "queries.jsonl"), "the corpus being indexed")
    return {q: queries[q] for q in qrels}, qrels


def check_target(target: Path) -> None:
    """Refuse to replace anything but an index: the build swaps the whole directory, and a mistyped
    ``--out`` (a home or data folder) must not be deleted."""
    if target.is_file() or target.is_symlink():
        raise IndexBuildError(f"{target}: exists and is not a directory; choose another output path")
    if target.is_dir() and any(target.iterdir()):
        try:
            fmt = json.loads((target / MANIFEST_FILE).read_text(encoding="utf-8")).get("format")
        except (OSError, ValueError, AttributeError):
            fmt = None
        if fmt != FORMAT:
            raise IndexBuildError(
                f"{target}: exists and is not an index (no {MANIFEST_FILE} of an LSTM-DSSM index); "
                "refusing to replace it: choose an empty or new output path"
            )


def _fsync_tree(directory: Path) -> None:
    """Flush every file and folder so the renamed index is complete on disk even after a power cut."""
    for p in sorted(directory.rglob("*"), reverse=True) + [directory]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def build_index(
    model_dir: str | os.PathLike,
    corpus_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    index_type: str = "flat",
    batch_size: int = 256,
    show_progress: bool = True,
    dev_data: str | os.PathLike | None = None,
    *,
    index_params: dict[str, Any] | None = None,
    on_duplicate_id: str = "error",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build an index of ``corpus_path`` with the model at ``model_dir`` into ``out_dir``; returns the manifest.

    ``dev_data``: a BEIR folder whose dev queries choose the hybrid fusion (else RRF k=10).
    ``index_params``: e.g. {"M": 32, "efSearch": 64} (hnsw), {"nlist": 256, "nprobe": 16} (ivf).
    """
    if log is None:
        def log(s: str) -> None:
            if show_progress:
                print(s, file=sys.stderr)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    target = Path(out_dir)
    check_target(target)
    t_start = time.perf_counter()
    encoder = Encoder.load(model_dir)
    corpus, dropped = dedupe(load_corpus(corpus_path), corpus_path, on_duplicate_id)
    n = len(corpus)
    if n == 0:
        raise DataError(f"{corpus_path}: no documents to index")
    spec = resolve_spec(index_type, n, index_params)  # a bad type or parameter fails before any work
    make_empty(spec, encoder.dim)
    dev = load_dev(dev_data, set(corpus.ids)) if dev_data is not None else None
    tmp = atomic_dir(target)
    seconds: dict[str, float] = {}
    try:
        t = time.perf_counter()
        rows = zip(corpus.ids, corpus.titles, corpus.texts, corpus.metadata, strict=True)
        _, corpus_fp = write_store(tmp / STORE_FILE, rows)
        seconds["store"] = time.perf_counter() - t

        texts = corpus.full_texts()
        t = time.perf_counter()
        with tqdm(total=n, unit="doc", desc="encoding", disable=not show_progress, file=sys.stderr) as bar:
            vectors = encoder.encode(texts, tower="document", batch_size=batch_size, progress=bar.update)
        seconds["encode"] = time.perf_counter() - t
        # The towers end in an L2 normalisation already; normalising again guards the inner-product =
        # cosine contract against any rounding drift. vectors: (N, D) float32.
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        np.save(tmp / VECTORS_FILE, vectors, allow_pickle=False)

        t = time.perf_counter()
        log(f"building FAISS index {spec.factory} over {n} vectors …")
        faiss.write_index(build_faiss(vectors, spec), str(tmp / FAISS_FILE))
        seconds["faiss"] = time.perf_counter() - t

        t = time.perf_counter()
        log("building BM25 index …")
        BM25(encoder.config.lang).index(texts).save(tmp / BM25_DIR)
        seconds["bm25"] = time.perf_counter() - t
        del texts

        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": {"fingerprint": encoder.fingerprint, "path": str(Path(model_dir).resolve()),
                      "lang": encoder.config.lang, "dim": encoder.dim},
            "dim": encoder.dim,
            "documents": n,
            "corpus": {"path": str(Path(corpus_path).resolve()), "fingerprint": corpus_fp,
                       "duplicate_ids_dropped": dropped},
            "index": {"type": spec.type, "factory": spec.factory, "metric": "inner_product",
                      "build": spec.build, "search": spec.search},
            "bm25": {"dir": BM25_DIR, "lang": encoder.config.lang, "library": "bm25s BM25() defaults",
                     "tokenizer": BM25_TOKENIZERS.get(encoder.config.lang, encoder.config.lang)},
            "fusion": dict(DEFAULT_FUSION),
            "encode_docs_per_second": round(n / max(seconds["encode"], 1e-9), 1),
            "libraries": library_versions(),
        }
        manifest["files"] = list_files(tmp)
        write_manifest(tmp, manifest)

        if dev is not None:
            t = time.perf_counter()
            queries, qrels = dev
            qids = list(qrels)
            log(f"choosing the hybrid fusion on {len(qids)} dev queries …")
            qv = encoder.encode([queries[q] for q in qids], tower="query", batch_size=batch_size)
            with SearchIndex.load(tmp, encoder) as idx:
                cands = idx.hybrid_candidates([queries[q] for q in qids], qv, DEPTH)
            manifest["fusion"] = {**choose_fusion(cands, qids, qrels, corpus.ids), "dev_data": str(Path(dev_data).resolve())}  # type: ignore[arg-type]
            seconds["fusion"] = time.perf_counter() - t

        seconds["total"] = time.perf_counter() - t_start
        manifest["build_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        write_manifest(tmp, manifest)
        # Read back everything just written, every byte hashed, before it replaces the old index.
        SearchIndex.load(tmp, encoder, verify_hashes=True).close()
        _fsync_tree(tmp)
        # mkdtemp made the folder private (0700); an index is read by a service, maybe as another user.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
