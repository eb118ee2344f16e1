#!/usr/bin/env python
"""Build a search index of a corpus with a trained LSTM-DSSM model.

    python scripts/build_index.py --model MODEL_DIR --corpus PATH --out INDEX_DIR
        [--index-type flat|hnsw|ivf|<faiss factory string>] [--batch-size N]
        [--param KEY=VALUE ...] [--dev-data auto|none|BEIR_DIR] [--on-duplicate-id error|first]

PATH: a BEIR folder, a corpus.jsonl ({"_id", "title", "text", ...}: other fields are kept as metadata),
a plain JSONL of {"id", "text"}, or a TSV of id<TAB>text (or id<TAB>title<TAB>text).

INDEX_DIR gets the document store (docs.sqlite), the document vectors (vectors.npy), the FAISS index
(dense.faiss), the BM25 index (bm25/) and manifest.json, built in a temporary folder beside it and
renamed into place at the end: an interrupted build leaves the previous index as it was.

--from-index LIVE_INDEX instead of --corpus re-encodes the documents a (live) index holds now with
--model (the corpus file may be long outdated); the manifest records the live index's path and last
sequence number, so that /admin/reload to the new index first catches up with the writes made since.
--empty (instead of --corpus) makes an empty index, to be filled through the write API.

--param sets index parameters: hnsw M, efConstruction, efSearch; ivf nlist, nprobe, train_size; a
factory string takes efSearch or nprobe. --dev-data picks the hybrid fusion (RRF k, a weighted score
fusion, a query-adaptive weight, or the model's own fusion.json) by dev NDCG@10; "auto" uses the corpus
folder when it is a BEIR folder with qrels/dev.tsv; without dev data the model's fusion.json serves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli._run import UsageError, run_cli
from index import IndexBuildError, IndexLoadError, SearchIndex, build_index
from index.live import LiveIndex, is_live
from models.data import Corpus
from models.encoder import Encoder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="trained model directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--corpus", help="BEIR folder, corpus.jsonl, JSONL or TSV")
    src.add_argument("--from-index", dest="from_index", help="re-encode the documents of this (live) index")
    src.add_argument("--empty", action="store_true", help="an empty index (filled through the write API)")
    p.add_argument("--out", required=True, help="index directory to (re)place")
    p.add_argument("--index-type", default="flat", help="flat (exact, default), hnsw, ivf or a FAISS factory string")
    p.add_argument("--batch-size", type=int, default=256, help="documents per encoder batch (default 256)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="index parameter (repeatable)")
    p.add_argument("--dev-data", default="auto", help="auto (default), none, or a BEIR folder with qrels/dev.tsv")
    p.add_argument("--on-duplicate-id", choices=("error", "first"), default="error",
                   help="a repeated document id is an error (default) or keeps its first document")
    p.add_argument("--threads", type=int, default=0, help="torch/FAISS threads (default: library default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {it!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def resolve_dev(arg: str, corpus: str) -> str | None:
    if arg == "none":
        return None
    if arg == "auto":
        c = Path(corpus)
        return str(c) if c.is_dir() and (c / "qrels" / "dev.tsv").is_file() else None
    return arg


def read_index(path: str) -> tuple[Corpus, dict[str, object]]:
    """The documents an index holds now (a live one: its current versions) and the ``from_index``
    manifest record (path, last sequence number)."""
    if is_live(path):
        with LiveIndex.open(path, None, create_live=False) as live:
            docs, seq = live.all_documents(), live.last_seq()
    else:
        with SearchIndex.load(path) as idx:
            docs, seq = [d for d in idx._store.get(range(idx.size)).values()], 0
    corpus = Corpus([d[0] for d in docs], [d[1] for d in docs], [d[2] for d in docs], [d[3] for d in docs])
    return corpus, {"path": str(Path(path).resolve()), "seq": seq, "documents": len(docs)}


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {a.batch_size}")
    if a.threads > 0:
        import faiss
        import torch

        torch.set_num_threads(a.threads)
        faiss.omp_set_num_threads(a.threads)
    if not a.corpus and a.dev_data not in ("auto", "none"):
        # An explicit dev folder is used whatever the documents come from (its qrels are checked
        # against the documents being indexed).
        dev = a.dev_data
    else:
        dev = resolve_dev(a.dev_data, a.corpus) if a.corpus else None
    try:
        corpus: Corpus | str = a.corpus or Corpus([], [], [], [])
        extra: dict[str, object] = {}
        if a.from_index:
            corpus, record = read_index(a.from_index)
            extra["from_index"] = record
        m = build_index(
            Encoder.load(a.model), corpus, a.out, index_type=a.index_type, batch_size=a.batch_size, show_progress=not a.quiet,
            dev_data=dev, index_params=parse_params(a.param), on_duplicate_id=a.on_duplicate_id,
            allow_empty=a.empty, extra=extra,
        )
    except (IndexBuildError, IndexLoadError) as e:
        raise UsageError(str(e)) from e
    f = m["fusion"]
    fusion = {"rrf": lambda: f"rrf k={f['k']}", "weighted": lambda: f"weighted w={f['weight']}"}.get(
        f["method"], lambda: f"{f['method']} (base {f.get('base', '?')})")()
    fusion += (f" (dev NDCG@10 {f['dev_ndcg@10']:.4f})" if f.get("chosen_on") == "dev"
               else f" (chosen on: {f.get('chosen_on', 'default')}, no dev data)")
    s = m["build_seconds"]
    print(f"index: {a.out}")
    print(f"documents: {m['documents']}  dim: {m['dim']}  type: {m['index']['type']} ({m['index']['factory']})")
    print(f"encoding: {s['encode']:.1f} s ({m['encode_docs_per_second']:.0f} docs/s)  total: {s['total']:.1f} s")
    if a.from_index:
        print(f"re-encoded from: {m['from_index']['path']} (up to sequence number {m['from_index']['seq']})")
    print(f"size on disk: {dir_size(Path(a.out)) / 2**20:.1f} MiB")
    print(f"hybrid fusion: {fusion}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
