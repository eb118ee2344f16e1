"""Relevance data: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/{split}.tsv) or a plain pairs file.

Every problem with the input (missing file, bad JSON, bad encoding, unknown ids, empty split) raises
:class:`DataError` with the file and line, so the command-line tools can print it and exit non-zero.
"""

from __future__ import annotations

import csv
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Qrels = dict[str, dict[str, int]]  # query id → {doc id: grade}


class DataError(ValueError):
    """Input data that cannot be used, with a message that says where and why."""


@dataclass
class Corpus:
    ids: list[str]
    titles: list[str]
    texts: list[str]
    metadata: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def full_text(self, i: int) -> str:
        """What the model and BM25 read: ``title + " " + text`` (just the text when no title)."""
        t = self.titles[i]
        return f"{t} {self.texts[i]}" if t else self.texts[i]

    def full_texts(self) -> list[str]:
        return [self.full_text(i) for i in range(len(self))]


@dataclass
class Dataset:
    name: str
    corpus: Corpus
    queries: dict[str, str]
    qrels: dict[str, Qrels]  # split → qrels

    def split(self, name: str) -> Qrels:
        if name not in self.qrels:
            raise DataError(f"{self.name}: no '{name}' split (have: {', '.join(sorted(self.qrels)) or 'none'})")
        return self.qrels[name]


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            yield from enumerate(f, 1)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from e


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in _read_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from e
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{n}: expected a JSON object")
        yield n, obj


def load_corpus(path: str | os.PathLike) -> Corpus:
    """A ``corpus.jsonl`` (``_id``, ``title``, ``text``; other fields kept as metadata), or a TSV of
    ``id<TAB>text`` (or ``id<TAB>title<TAB>text``), or a BEIR folder holding corpus.jsonl."""
    p = Path(path)
    if p.is_dir():
        p = p / "corpus.jsonl"
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    meta: list[dict[str, Any]] = []
    if p.suffix in (".tsv", ".txt"):
        for n, line in _read_lines(p):
            cols = line.rstrip("\n").split("\t")
            if n == 1 and cols[0].lower() in ("id", "_id", "doc_id", "corpus-id"):
                continue
            if not line.strip():
                continue
            if len(cols) == 2:
                ids.append(cols[0])
                titles.append("")
                texts.append(cols[1])
            elif len(cols) == 3:
                ids.append(cols[0])
                titles.append(cols[1])
                texts.append(cols[2])
            else:
                raise DataError(f"{p}:{n}: expected id<TAB>text or id<TAB>title<TAB>text")
            meta.append({})
    else:
        for n, obj in read_jsonl(p):
            did = obj.get("_id", obj.get("id"))
            if did is None or not isinstance(obj.get("text", ""), str):
                raise DataError(f"{p}:{n}: a document needs '_id' (or 'id') and a string 'text'")
            ids.append(str(did))
            titles.append(str(obj.get("title") or ""))
            texts.append(obj.get("text") or "")
            meta.append({k: v for k, v in obj.items() if k not in ("_id", "id", "title", "text")})
    return Corpus(ids, titles, texts, meta)


def load_queries(path: Path) -> dict[str, str]:
    out = {}
    for n, obj in read_jsonl(path):
        if "_id" not in obj or not isinstance(obj.get("text"), str):
            raise DataError(f"{path}:{n}: a query needs '_id' and a string 'text'")
        out[str(obj["_id"])] = obj["text"]
    return out


def load_qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    rows = _read_lines(path)
    for n, line in rows:
        cols = line.rstrip("\n").split("\t")
        if n == 1 and cols[0] == "query-id":
            continue
        if not line.strip():
            continue
        if len(cols) < 2:
            raise DataError(f"{path}:{n}: expected query-id<TAB>corpus-id<TAB>score")
        try:
            score = int(float(cols[2])) if len(cols) > 2 else 1
        except ValueError as e:
            raise DataError(f"{path}:{n}: score {cols[2]!r} is not a number") from e
        if score > 0:
            qrels.setdefault(cols[0], {})[cols[1]] = score
    return qrels


def check_qrels(
    path: Path, qrels: Qrels, queries: dict[str, str], doc_ids: set[str],
    queries_name: str = "queries.jsonl", corpus_name: str = "corpus.jsonl",
) -> None:
    """Every judged pair must name a known query and a known document."""
    for qid, rel in qrels.items():
        if qid not in queries:
            raise DataError(f"{path}: query id {qid!r} is not in {queries_name}")
        for did in rel:
            if did not in doc_ids:
                raise DataError(f"{path}: corpus id {did!r} (query {qid!r}) is not in {corpus_name}")


def load_beir(folder: str | os.PathLike, splits: tuple[str, ...] = ("train", "dev", "test")) -> Dataset:
    """A BEIR folder. Splits whose qrels file is absent are left out; at least one must exist."""
    d = Path(folder)
    if not d.is_dir():
        raise DataError(f"dataset folder not found: {d}")
    corpus = load_corpus(d / "corpus.jsonl")
    queries = load_queries(d / "queries.jsonl")
    doc_ids = set(corpus.ids)
    if len(doc_ids) != len(corpus.ids):
        raise DataError(f"{d / 'corpus.jsonl'}: duplicate document ids")
    qrels: dict[str, Qrels] = {}
    for s in splits:
        p = d / "qrels" / f"{s}.tsv"
        if not p.is_file():
            continue
        qr = load_qrels(p)
        check_qrels(p, qr, queries, doc_ids)
        qrels[s] = qr
    if not qrels:
        raise DataError(f"{d}: no qrels/{{{','.join(splits)}}}.tsv found")
    return Dataset(d.name, corpus, queries, qrels)


def _pairs_rows(p: Path) -> Iterator[tuple[int, str, str]]:
    if p.suffix == ".jsonl":
        for n, obj in read_jsonl(p):
            q = obj.get("query")
            doc = next((obj[k] for k in ("document", "doc", "positive", "text") if k in obj), None)
            if not isinstance(q, str) or not isinstance(doc, str):
                raise DataError(f"{p}:{n}: a pair needs string fields 'query' and 'document'")
            yield n, q, doc
    else:
        for n, line in _read_lines(p):
            if not line.strip():
                continue
            cols = next(csv.reader([line.rstrip("\n")], delimiter="\t", quoting=csv.QUOTE_NONE))
            if n == 1 and [c.lower() for c in cols[:2]] == ["query", "document"]:
                continue
            if len(cols) != 2:
                raise DataError(f"{p}:{n}: expected query<TAB>document")
            yield n, cols[0], cols[1]


def load_pairs(path: str | os.PathLike, dev_fraction: float = 0.1) -> Dataset:
    """A pairs file (TSV ``query<TAB>document`` or JSONL ``{"query", "document"}``) as a Dataset.

    Identical texts share one id; a fixed hash of the query text puts ~``dev_fraction`` of the
    queries in ``dev`` (so reruns split the same way), the rest in ``train``.
    """
    p = Path(path)
    doc_id: dict[str, str] = {}
    query_id: dict[str, str] = {}
    qrels: dict[str, Qrels] = {"train": {}, "dev": {}}
    for _, q, doc in _pairs_rows(p):
        if not q.strip() or not doc.strip():
            continue
        did = doc_id.setdefault(doc, f"d{len(doc_id)}")
        qid = query_id.setdefault(q, f"q{len(query_id)}")
        split = "dev" if zlib.crc32(q.encode("utf-8")) % 1000 < dev_fraction * 1000 else "train"
        qrels[split].setdefault(qid, {})[did] = 1
    if not qrels["train"]:
        raise DataError(f"{p}: no usable (query, document) pairs")
    if not qrels["dev"]:
        del qrels["dev"]
    docs = list(doc_id)
    corpus = Corpus([doc_id[t] for t in docs], [""] * len(docs), docs, [{} for _ in docs])
    return Dataset(p.stem, corpus, {v: k for k, v in query_id.items()}, qrels)


def load_dataset(path: str | os.PathLike) -> Dataset:
    """A BEIR folder or a pairs file, by what ``path`` is."""
    p = Path(path)
    if p.is_dir():
        return load_beir(p)
    if p.is_file():
        return load_pairs(p)
    raise DataError(f"dataset not found: {p} (a BEIR folder, or a .tsv/.jsonl pairs file)")
