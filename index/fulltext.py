"""The live index's lexical side: SQLite FTS5 ``bm25()`` over the terms of index/lexical.py.

Why FTS5 (measured against tantivy and today's bm25s: README "Live index"): it lives in the same database
as the documents, vectors and log, so one transaction adds a document to all of them and one fsync makes
it durable; a delete removes its terms in that same transaction, and FTS5 keeps the global statistics
(document count, average length, document frequencies) exact under writes.

The tokenisation stays ours (English stopwords + Snowball stemmer; CJK characters + bigrams): texts are
tokenised in Python and each term is stored hex-encoded (``"感冒"`` → ``e6849fe58692``), so FTS5's own
tokenizer (``unicode61``) only splits on the spaces between terms and never re-splits, folds or drops
a term (punctuation bigrams of Chinese text, digits, non-ASCII stems survive unchanged).

Scoring: FTS5's Okapi BM25 (k1 = 1.2, b = 0.75, idf = ln((N − n + 0.5)/(n + 0.5)), at least 1e-6),
versus bm25s's Lucene variant (k1 = 1.5); test NDCG@10 agrees within 0.01 (README).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from .lexical import tokenize
from .store import canonical_value

FTS_SCHEMA = """
CREATE VIRTUAL TABLE fts USING fts5(terms);
CREATE VIRTUAL TABLE fts_vocab USING fts5vocab(fts, 'row');
"""
# detail=full (the default), not detail=none: without positions FTS5's bm25() cannot read term
# frequencies cheaply and took 101 ms/query on medquad against 10 ms (same NDCG@10 on 300 test queries).


def encode_terms(terms: Sequence[str]) -> str:
    """A document's terms as the FTS5 column text: hex of each term's UTF-8, space-separated."""
    return " ".join(t.encode("utf-8").hex() for t in terms)


def document_terms(texts: Sequence[str], lang: str) -> list[str]:
    """The FTS5 column text of each document (``title + " " + text``)."""
    return [encode_terms(t) for t in tokenize(texts, lang)]


def query_terms(queries: Sequence[str], lang: str) -> list[list[str]]:
    """Each query's hex-encoded terms, in order (repeats kept: the fusion's qlen counts them)."""
    return hex_terms(tokenize(queries, lang))


def hex_terms(tokens: Sequence[Sequence[str]]) -> list[list[str]]:
    """Each query's terms (``tokenize``'s output) hex-encoded, as the full-text table holds them."""
    return [[t.encode("utf-8").hex() for t in toks] for toks in tokens]


def filter_sql(filter: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """``AND rowid IN (…)`` clauses keeping the documents whose metadata has every ``field == value``."""
    if not filter:
        return "", []
    sql, params = [], []
    for field, value in filter.items():
        sql.append(" AND rowid IN (SELECT key FROM meta WHERE field = ? AND value = ?)")
        params += [field, canonical_value(value)]
    return "".join(sql), params


def search(con: sqlite3.Connection, terms: list[str], k: int, filter: dict[str, Any] | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(keys (n,) int64, BM25 scores (n,) float32) best first, n ≤ k; documents sharing no term with the
    query are not returned. Ties: lower key first."""
    if not terms or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    match = " OR ".join(f'"{t}"' for t in dict.fromkeys(terms))
    where, params = filter_sql(filter)
    # rank = bm25(fts), negative (lower is better in FTS5): negated for "higher is better", like bm25s.
    rows = con.execute(
        f"SELECT rowid, -rank AS s FROM fts WHERE fts MATCH ?{where} ORDER BY rank, rowid LIMIT ?",
        [match, *params, int(k)],
    ).fetchall()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    scores = np.fromiter((r[1] for r in rows), dtype=np.float32, count=len(rows))
    return keys, scores


def known_share(con: sqlite3.Connection, terms: list[list[str]]) -> list[tuple[int, float]]:
    """Per query (number of terms, share of them present in the corpus): the fusion's qlen and known
    features, as ``BM25.query_stats`` computes them over bm25s's vocabulary."""
    out = []
    for toks in terms:
        if not toks:
            out.append((0, 0.0))
            continue
        distinct = list(dict.fromkeys(toks))
        marks = ",".join("?" * len(distinct))
        present = {r[0] for r in con.execute(f"SELECT term FROM fts_vocab WHERE term IN ({marks})", distinct)}
        out.append((len(toks), sum(t in present for t in toks) / len(toks)))
    return out
