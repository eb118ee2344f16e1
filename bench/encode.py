#!/usr/bin/env python
"""Encoding throughput (texts/s) of each tower, for short and long texts.

    python scripts/bench_encode.py --model MODEL_DIR [--data DATASET] [--seconds 5] [--threads N]

Short texts have ≤ 10 words, long ones ~200 words (cut to the tower's max words, as in service); taken
from DATASET's queries and documents when given, else made from the model's own vocabulary.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from cli._run import run_cli
from models.data import load_dataset
from models.encoder import Encoder


def texts_of(data_path: str | None, n: int, enc: Encoder) -> tuple[list[str], list[str]]:
    rng = random.Random(0)
    if data_path:
        d = load_dataset(data_path)
        words = " ".join(d.corpus.full_text(i) for i in range(min(len(d.corpus), 3000))).split()
        short = [q for q in d.queries.values() if len(q.split()) <= 10] or list(d.queries.values())
    else:
        words = [g.strip("#") for g in enc.vocab.ngrams[:5000] if len(g.strip("#")) > 1]
        short = [" ".join(rng.choices(words, k=rng.randint(3, 10))) for _ in range(n)]
    if enc.config.lang == "zh":  # a Chinese "word" is a character: ~200 characters
        long = ["".join(rng.choices(words, k=60))[:200] for _ in range(n)]
    else:
        long = [" ".join(rng.choices(words, k=200)) for _ in range(n)]
    return rng.sample(short, min(n, len(short))), long


def rate(enc: Encoder, texts: list[str], tower: str, batch: int, seconds: float) -> float:
    enc.encode(texts[:batch], tower, batch_size=batch)  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for s in range(0, len(texts), batch):
            enc.encode(texts[s : s + batch], tower, batch_size=batch)
            n += len(texts[s : s + batch])
            if time.perf_counter() - t0 >= seconds:
                break
    return n / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    enc = Encoder.load(a.model)
    short, long = texts_of(a.data, 2048, enc)
    print(f"model {a.model} (lang {enc.config.lang}, dim {enc.dim}), torch threads {torch.get_num_threads()}")
    print(f"{'tower':<9} {'texts':<6} {'batch':>5} {'texts/s':>9}")
    for tower in ("query", "document"):
        for name, texts in (("short", short), ("long", long)):
            for batch in (1, 256):
                r = rate(enc, texts, tower, batch, a.seconds)
                print(f"{tower:<9} {name:<6} {batch:>5} {r:9.1f}", flush=True)
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
