"""The live index's lexical engine, chosen by measurement: bm25s (today's, static), SQLite FTS5 ``bm25()``
(index/fulltext.py) and tantivy (when installed), each over the same terms (index/lexical.py), on the
test split of BEIR datasets: NDCG@10 against the reference figures, index time, ms/query.

    python -m bench.lexical_engines --data ../shared/data/medquad ../shared/data/kuake_qtr [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from index.evaluation import evaluate_run
from index.fulltext import FTS_SCHEMA, encode_terms, query_terms
from index.fulltext import search as fts_search
from index.lexical import BM25, tokenize
from models.data import load_beir

REFERENCE = {"medquad": 0.602, "kuake_qtr": 0.809}
LANG = {"medquad": "en", "kuake_qtr": "zh"}


def _bm25s(texts: list[str], queries: list[str], lang: str) -> tuple[list[list[int]], float, float]:
    t = time.perf_counter()
    b = BM25(lang).index(texts)
    t_index = time.perf_counter() - t
    t = time.perf_counter()
    out = []
    for q in queries:  # one query at a time, as the service searches
        idx, sc = b.search([q], 100)
        out.append([int(i) for i, s in zip(idx[0], sc[0], strict=True) if s > 0])
    return out, t_index, (time.perf_counter() - t) / len(queries) * 1000


def _fts5(texts: list[str], queries: list[str], lang: str) -> tuple[list[list[int]], float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        con = sqlite3.connect(Path(tmp) / "fts.sqlite")
        con.execute("CREATE TABLE meta (field TEXT, value TEXT, key INTEGER)")
        con.executescript(FTS_SCHEMA)
        t = time.perf_counter()
        terms = tokenize(texts, lang)
        con.executemany("INSERT INTO fts (rowid, terms) VALUES (?, ?)", ((i, encode_terms(x)) for i, x in enumerate(terms)))
        con.commit()
        t_index = time.perf_counter() - t
        t = time.perf_counter()
        out = []
        for q in queries:
            keys, _ = fts_search(con, query_terms([q], lang)[0], 100)
            out.append(keys.tolist())
        ms = (time.perf_counter() - t) / len(queries) * 1000
        con.close()
    return out, t_index, ms


def _tantivy(texts: list[str], queries: list[str], lang: str) -> tuple[list[list[int]], float, float] | None:
    try:
        import tantivy  # type: ignore[import-not-found]
    except ImportError:
        return None
    sb = tantivy.SchemaBuilder()
    # Our own terms, pre-tokenised: the "raw"-free route is a whitespace tokenizer over hex terms.
    sb.add_text_field("terms", stored=False, tokenizer_name="whitespace")
    sb.add_integer_field("key", stored=True, indexed=True, fast=True)
    schema = sb.build()
    with tempfile.TemporaryDirectory() as tmp:
        ix = tantivy.Index(schema, path=tmp)
        t = time.perf_counter()
        w = ix.writer(heap_size=100_000_000, num_threads=1)
        for i, x in enumerate(tokenize(texts, lang)):
            w.add_document(tantivy.Document(terms=encode_terms(x), key=i))
        w.commit()
        w.wait_merging_threads()
        ix.reload()
        t_index = time.perf_counter() - t
        searcher = ix.searcher()
        t = time.perf_counter()
        out = []
        for q in queries:
            terms = list(dict.fromkeys(query_terms([q], lang)[0]))
            if not terms:
                out.append([])
                continue
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "terms", x)) for x in terms]
            )
            hits = searcher.search(query, 100).hits
            out.append([int(searcher.doc(addr)["key"][0]) for _, addr in hits])
        ms = (time.perf_counter() - t) / len(queries) * 1000
    return out, t_index, ms


def measure(folder: Path) -> dict[str, Any]:
    data = load_beir(folder)
    lang = LANG.get(folder.name, data_lang(data))
    qrels = data.qrels["test"]
    qids = list(qrels)
    queries = [data.queries[q] for q in qids]
    texts = data.corpus.full_texts()
    ids = data.corpus.ids
    out: dict[str, Any] = {"dataset": folder.name, "documents": len(ids), "queries": len(qids),
                           "reference_ndcg@10": REFERENCE.get(folder.name)}
    for name, fn in (("bm25s", _bm25s), ("fts5", _fts5), ("tantivy", _tantivy)):
        res = fn(texts, queries, lang)
        if res is None:
            out[name] = None
            continue
        ranked, t_index, ms = res
        run = {q: [ids[i] for i in r] for q, r in zip(qids, ranked, strict=True)}
        m = evaluate_run(run, qrels)
        out[name] = {"ndcg@10": round(m["ndcg@10"], 4), "recall@100": round(m["recall@100"], 4),
                     "index_seconds": round(t_index, 2), "ms_per_query": round(ms, 3)}
        print(f"{folder.name:10s} {name:8s} NDCG@10 {m['ndcg@10']:.4f}  R@100 {m['recall@100']:.4f}  "
              f"index {t_index:6.1f} s  {ms:7.3f} ms/query", flush=True)
    return out


def data_lang(data: Any) -> str:
    sample = " ".join(data.corpus.texts[:50])
    return "zh" if sum("\u4e00" <= c <= "\u9fff" for c in sample) > len(sample) * 0.2 else "en"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="BEIR folders")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args(argv)
    results = [measure(Path(d)) for d in a.data]
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
