"""A small, deterministic BEIR dataset that the tests make themselves (no ../shared needed).

Made-up entities × aspects, in the shape of medquad: a document per (entity, aspect), titled with the
entity; a query per pair ("what are the symptoms of <entity>"). Entities are split between train, dev
and test, so dev/test queries name entities never seen in training, as in the real data.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

ASPECTS = {
    "symptoms": ("What are the symptoms of {e}?", "The signs and symptoms of {e} include fever, pain and {w}."),
    "causes": ("What causes {e}?", "{e} is caused by changes in the {w} gene and is inherited."),
    "treatment": ("How to treat {e}?", "Treatment of {e} includes medication, rest and {w} therapy."),
}
FILLER = ["blood", "heart", "lung", "skin", "bone", "liver", "kidney", "brain", "nerve", "muscle", "eye", "ear"]


def entity_names(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ser", "tu", "vex", "dra", "pol", "zin", "ar", "bel", "cor", "nyx", "ul"]
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) + rng.choice([" syndrome", " disease", ""]))
    return sorted(names)


def make_beir(folder: Path, n_entities: int = 60, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    docs, queries, qrels = [], [], {"train": [], "dev": [], "test": []}
    for k, e in enumerate(entity_names(n_entities, seed)):
        split = "test" if k % 10 == 0 else "dev" if k % 10 == 1 else "train"
        for a, (qt, dt) in ASPECTS.items():
            did, qid = f"d{len(docs)}", f"q{len(queries)}"
            docs.append({"_id": did, "title": e.title(), "text": dt.format(e=e, w=rng.choice(FILLER)), "aspect": a})
            queries.append({"_id": qid, "text": qt.format(e=e)})
            qrels[split].append((qid, did, 1))
    return write_beir(folder, docs, queries, qrels)


def write_beir(folder: Path, docs: list[dict], queries: list[dict], qrels: dict[str, list[tuple[str, str, int]]]) -> Path:
    """A BEIR folder: corpus.jsonl, queries.jsonl and qrels/{split}.tsv (query-id, corpus-id, score)."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(q, ensure_ascii=False) + "\n" for q in queries)
    for s, rows in qrels.items():
        with open(folder / "qrels" / f"{s}.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            f.writelines(f"{q}\t{d}\t{g}\n" for q, d, g in rows)
    return folder
