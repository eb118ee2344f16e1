"""Offline index build: corpus → document store, document vectors, FAISS index, BM25 index, manifest.

Everything is written into a temporary directory beside the target, checked (hashes included) and
renamed into place at the end: an interrupted build (Ctrl-C, kill -9) leaves the previous index as
it was. A killed build can leave a ``.NAME.tmp-*`` directory beside NAME, safe to delete.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from common.fs import ForeignFolderError, atomic_dir, guard_target
from models.data import Corpus, DataError, Dataset, Qrels, check_qrels, load_corpus, load_qrels, load_queries

from .dense import FAISS_FILE, VECTORS_FILE, build_faiss, make_empty, resolve_spec
from .errors import IndexBuildError
from .familiar import sketch
from .fusion import DEFAULT_FUSION, DEPTH, check_fusion, choose_fusion, choose_model_fusion, settings_of
from .lexical import BM25, TOKENIZERS, tokenize
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST_FILE, library_versions, list_files, write_manifest
from .probes import probe_queries
from .protocols import TextEncoder
from .search import BM25_DIR, SearchIndex
from .store import STORE_FILE, write_store

DevSet = tuple[dict[str, str], Qrels]  # dev queries (id → text) and their judgements


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


def is_index_dir(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_target(target: Path) -> None:
    """Refuse to replace anything but an index (or an empty folder): see ``common.fs.guard_target``."""
    try:
        guard_target(target, is_index_dir, f"an index (no {MANIFEST_FILE} of an LSTM-DSSM index)")
    except ForeignFolderError as e:
        raise IndexBuildError(str(e)) from e


def model_fusion(encoder: TextEncoder) -> dict[str, Any]:
    """Without dev data of the corpus: the fusion fitted with the model on its training dev split, else
    the default RRF k=10."""
    f = encoder.fusion
    if f is None or check_fusion(f) is not None:
        return dict(DEFAULT_FUSION)
    dev = {k: f[k] for k in ("dev_queries", "dev_ndcg@10", "dev_dense_ndcg@10", "dev_bm25_ndcg@10") if k in f}
    return {**settings_of(f), "depth": int(f.get("depth", DEPTH)), "chosen_on": "model", "model_dev": dev}


def check_vectors(vectors: np.ndarray, n: int, encoder: TextEncoder) -> None:
    """The encoder contract the index relies on (inner product = cosine): (n, dim) finite unit rows."""
    if not isinstance(vectors, np.ndarray) or vectors.dtype != np.float32 or vectors.shape != (n, encoder.dim):
        shape = getattr(vectors, "shape", None)
        raise IndexBuildError(f"encoder {encoder.name} returned {type(vectors).__name__} {shape}, not float32 ({n}, {encoder.dim})")
    norms = np.linalg.norm(vectors, axis=1)
    if not np.isfinite(norms).all() or np.abs(norms - 1).max(initial=0) > 1e-3:
        raise IndexBuildError(f"encoder {encoder.name} returned vectors that are not finite unit vectors")


PROBES = 1000  # probe queries for a model's fusion (index/probes.py)


def fit_model_fusion(encoder: TextEncoder, data: Dataset, probes: int = PROBES, seed: int = 0,
                     max_dev: int | None = None) -> dict[str, Any] | None:
    """The fusion a model carries (``fusion.json``), for corpora without judgements of their own: fitted
    over a temporary flat index of its training corpus on the dev split (its first ``max_dev`` queries,
    as training's dev evaluation takes them) and on probe queries made from that corpus (index/fusion.py
    ``choose_model_fusion``). None when the data has no dev split."""
    dev = data.qrels.get("dev")
    if not dev:
        return None
    if max_dev and len(dev) > max_dev:
        dev = {q: dev[q] for q in sorted(dev)[:max_dev]}
    qids = list(dev)
    texts = [data.queries[q] for q in qids]
    ptexts, prels = probe_queries(data.corpus, min(probes, max(len(qids), 200)), encoder.lang, seed)
    with tempfile.TemporaryDirectory(prefix="dssm-fusion-") as tmp:
        out = Path(tmp) / "index"
        build_index(encoder, data.corpus, out, show_progress=False, durable=False, log=lambda s: None)
        with SearchIndex.load(out, encoder) as idx:
            cands = idx.hybrid_candidates(texts, encoder.encode(texts, tower="query"), DEPTH)
            pcands = idx.hybrid_candidates(ptexts, encoder.encode(ptexts, tower="query"), DEPTH) if ptexts else []
    # The terms the training text holds often (the training queries and the corpus, as BM25 reads them):
    # the dense weight follows the share of a query's terms among them (index/familiar.py).
    train = data.qrels.get("train", {})
    familiar = sketch(tokenize([data.queries[q] for q in train] + data.corpus.full_texts(), encoder.lang))
    f = choose_model_fusion(cands, qids, dev, pcands, prels, data.corpus.ids, familiar=familiar)
    f["dev_data"] = data.name
    return f


def build_index(
    encoder: TextEncoder,
    corpus: Corpus | str | os.PathLike,
    out_dir: str | os.PathLike,
    index_type: str = "flat",
    batch_size: int = 256,
    show_progress: bool = True,
    dev_data: str | os.PathLike | DevSet | None = None,
    *,
    index_params: dict[str, Any] | None = None,
    on_duplicate_id: str = "error",
    log: Callable[[str], None] | None = None,
    durable: bool = True,
    allow_empty: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build an index of ``corpus`` (a loaded corpus or a path) with ``encoder`` into ``out_dir``;
    returns the manifest.

    ``dev_data``: a BEIR folder, or (queries, qrels), whose dev queries choose the hybrid fusion (else
    RRF k=10). ``index_params``: e.g. {"M": 32, "efSearch": 64} (hnsw), {"nlist": 256, "nprobe": 16} (ivf).
    ``durable=False`` skips the fsync of every file (a throw-away index, e.g. evaluation's).
    ``allow_empty``: an empty corpus makes an empty index (flat or hnsw, no bm25s side) to be filled
    through the live index's write API. ``extra``: more manifest fields (``from_index``).
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
    source = "(in memory)" if isinstance(corpus, Corpus) else str(Path(corpus).resolve())
    loaded = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
    corpus, dropped = dedupe(loaded, source, on_duplicate_id)
    n = len(corpus)
    if n == 0 and not allow_empty:
        raise DataError(f"{source}: no documents to index")
    if n == 0 and index_type not in ("flat", "hnsw"):
        raise IndexBuildError(f"an empty index must be flat or hnsw, not {index_type!r} (nothing to train on)")
    spec = resolve_spec(index_type, n, index_params)  # a bad type or parameter fails before any work
    make_empty(spec, encoder.dim)
    if isinstance(dev_data, tuple) and not dev_data[1]:
        raise DataError("dev data given with no judged queries")
    if dev_data is None or isinstance(dev_data, tuple):
        dev, dev_source = dev_data, "(in memory)"
    else:
        dev, dev_source = load_dev(dev_data, set(corpus.ids)), str(Path(dev_data).resolve())
    seconds: dict[str, float] = {}
    with atomic_dir(target, durable=durable) as tmp:
        t = time.perf_counter()
        rows = zip(corpus.ids, corpus.titles, corpus.texts, corpus.metadata, strict=True)
        _, corpus_fp = write_store(tmp / STORE_FILE, rows)
        seconds["store"] = time.perf_counter() - t

        texts = corpus.full_texts()
        t = time.perf_counter()
        with tqdm(total=n, unit="doc", desc="encoding", disable=not show_progress, file=sys.stderr) as bar:
            vectors = (encoder.encode(texts, tower="document", batch_size=batch_size, progress=bar.update) if n
                       else np.zeros((0, encoder.dim), dtype=np.float32))  # (N, D)
        seconds["encode"] = time.perf_counter() - t
        check_vectors(vectors, n, encoder)
        np.save(tmp / VECTORS_FILE, vectors, allow_pickle=False)

        t = time.perf_counter()
        log(f"building FAISS index {spec.factory} over {n} vectors …")
        faiss.write_index(build_faiss(vectors, spec), str(tmp / FAISS_FILE))
        seconds["faiss"] = time.perf_counter() - t

        t = time.perf_counter()
        if n:
            log("building BM25 index …")
            BM25(encoder.lang).index(texts).save(tmp / BM25_DIR)
        seconds["bm25"] = time.perf_counter() - t
        del texts

        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": {"fingerprint": encoder.fingerprint, "path": encoder.name, "lang": encoder.lang, "dim": encoder.dim},
            "dim": encoder.dim,
            "documents": n,
            "corpus": {"path": source, "fingerprint": corpus_fp, "duplicate_ids_dropped": dropped},
            "index": {"type": spec.type, "factory": spec.factory, "metric": "inner_product",
                      "build": spec.build, "search": spec.search},
            # An empty index has no bm25s side: a live index's lexical side is FTS5 (index/fulltext.py).
            "bm25": {"dir": BM25_DIR, "lang": encoder.lang, "library": "bm25s BM25() defaults",
                     "tokenizer": TOKENIZERS.get(encoder.lang, encoder.lang)} if n else None,
            "fusion": model_fusion(encoder),
            "encode_docs_per_second": round(n / max(seconds["encode"], 1e-9), 1),
            "libraries": library_versions(),
            **(extra or {}),
        }
        manifest["files"] = list_files(tmp)
        write_manifest(tmp, manifest)

        if dev is not None and n:
            t = time.perf_counter()
            queries, qrels = dev
            qids = list(qrels)
            log(f"choosing the hybrid fusion on {len(qids)} dev queries …")
            qv = encoder.encode([queries[q] for q in qids], tower="query", batch_size=batch_size)
            with SearchIndex.load(tmp, encoder) as idx:
                cands = idx.hybrid_candidates([queries[q] for q in qids], qv, DEPTH)
            prior = encoder.fusion if encoder.fusion is not None and check_fusion(encoder.fusion) is None else None
            manifest["fusion"] = {**choose_fusion(cands, qids, qrels, corpus.ids, prior=prior), "dev_data": dev_source}
            seconds["fusion"] = time.perf_counter() - t

        seconds["total"] = time.perf_counter() - t_start
        manifest["build_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        write_manifest(tmp, manifest)
        # Read back everything just written, every byte hashed, before it replaces the old index.
        SearchIndex.load(tmp, encoder, verify_hashes=True).close()
    return manifest
