#!/usr/bin/env python
"""Train an LSTM-DSSM on (query, relevant document) pairs.

    python scripts/train.py --data DATASET --out MODEL_DIR [--lang auto|en|zh] [--epochs N]
        [--max-minutes M] [--batch-size B] [--seed S] [--init MODEL_DIR] ...

DATASET is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/dev.tsv) or a pairs
file (TSV ``query<TAB>document`` or JSONL ``{"query", "document"}``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from cli._run import UsageError, run_cli
from common.fs import ForeignFolderError, guard_target
from index.build import fit_model_fusion
from models.config import ModelConfig
from models.data import load_dataset
from models.encoder import Encoder
from models.io import is_model_dir, load_model, write_fusion
from models.training import TrainConfig, Trainer, resolve_lang

# Defaults by language, chosen on the dev splits (see README, "Training results").
LANG_DEFAULTS = {
    "en": {"shared_towers": True, "doc_max_words": 32, "augment": 0.0},
    "zh": {"shared_towers": True, "doc_max_words": 64, "augment": 1.0},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="BEIR folder or pairs file (.tsv/.jsonl)")
    p.add_argument("--out", required=True, help="model directory to write (replaced atomically)")
    p.add_argument("--lang", choices=["auto", "en", "zh"], default="auto")
    p.add_argument("--init", help="continue training (fine-tune) this model directory")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--max-minutes", type=float, default=None, help="bound on the whole run's wall clock")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--negatives", type=int, default=4, help="J sampled negatives per query (besides in-batch)")
    p.add_argument("--hard-negatives", type=int, default=0, help="BM25 top hits mined per query (0: off)")
    p.add_argument("--hard-fraction", type=float, default=0.5)
    p.add_argument("--augment", type=float, default=None,
                   help="pseudo-queries (random spans of corpus documents) per real pair each epoch")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--dev-max-queries", type=int, default=None)
    m = p.add_argument_group("model")
    m.add_argument("--vocab-size", type=int, default=40_000)
    m.add_argument("--num-buckets", type=int, default=20_000)
    m.add_argument("--embed-dim", type=int, default=256)
    m.add_argument("--hidden-dim", type=int, default=256)
    m.add_argument("--out-dim", type=int, default=128)
    m.add_argument("--shared-towers", choices=["auto", "yes", "no"], default="auto")
    m.add_argument("--pooling", choices=["last", "max", "mean"], default="last")
    m.add_argument("--query-max-words", type=int, default=32)
    m.add_argument("--doc-max-words", type=int, default=None)
    m.add_argument("--gamma", type=float, default=20.0)
    m.add_argument("--learn-gamma", action="store_true")
    m.add_argument("--ngram-dropout", type=float, default=0.1)
    m.add_argument("--word-dropout", type=float, default=0.1)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.max_minutes is not None and a.max_minutes <= 0:
        p.error("--max-minutes must be positive")
    return a


def check_out(out: Path) -> None:
    """Refuse to replace a non-empty folder that is not a model directory."""
    try:
        guard_target(out, is_model_dir, "an LSTM-DSSM model directory")
    except ForeignFolderError as e:
        raise UsageError(f"--out {e}") from e


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    a = parse_args(argv)
    out = Path(a.out)
    check_out(out)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load_dataset(a.data)
    init = load_model(a.init) if a.init else None
    lang = init.config.lang if init else resolve_lang(data, a.lang)
    d = LANG_DEFAULTS[lang]
    shared = d["shared_towers"] if a.shared_towers == "auto" else a.shared_towers == "yes"
    mcfg = ModelConfig(
        lang=lang, vocab_size=a.vocab_size, num_buckets=a.num_buckets, embed_dim=a.embed_dim,
        hidden_dim=a.hidden_dim, out_dim=a.out_dim, shared_towers=shared, pooling=a.pooling,
        query_max_words=a.query_max_words, doc_max_words=a.doc_max_words or d["doc_max_words"],
        gamma=a.gamma, learn_gamma=a.learn_gamma, ngram_dropout=a.ngram_dropout, word_dropout=a.word_dropout,
    )
    tcfg = TrainConfig(
        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay, negatives=a.negatives,
        hard_negatives=a.hard_negatives, hard_fraction=a.hard_fraction, max_minutes=a.max_minutes,
        patience=a.patience, seed=a.seed, augment=a.augment if a.augment is not None else d["augment"], dev_max_queries=a.dev_max_queries, show_progress=not a.quiet,
    )
    print(f"data {data.name}: {len(data.corpus)} documents, "
          + ", ".join(f"{s} {len(q)} queries" for s, q in data.qrels.items()) + f"; lang {lang}", flush=True)
    trainer = Trainer(data, mcfg, tcfg, init=init, log=lambda s: print(s, flush=True), started=started)
    res = trainer.fit()
    trainer.save(out, res)
    best = res.best_dev
    msg = f"saved {out} (best epoch {res.best_epoch}, stopped: {res.stopped}, {res.seconds / 60:.1f} min)"
    if best:
        msg += f"; dev ndcg@10 {best['ndcg@10']:.4f} mrr@10 {best['mrr@10']:.4f} recall@100 {best['recall@100']:.4f}"
    print(msg)
    # The hybrid fusion the model carries for corpora without judgements (fusion.json; not fingerprinted).
    fusion = fit_model_fusion(Encoder.load(out), data)
    if fusion is not None:
        write_fusion(out, fusion)
        how = fusion["method"] + (f" on {fusion['base']}" if fusion["method"] == "adaptive" else "")
        print(f"hybrid fusion ({fusion['chosen_on']}): {how}; dev ndcg@10 {fusion['dev_ndcg@10']:.4f} "
              f"(dense {fusion['dev_dense_ndcg@10']:.4f}, bm25 {fusion['dev_bm25_ndcg@10']:.4f})", flush=True)
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
