"""The training loop (plumbing): batches of (query, relevant document) pairs, negatives, dev evaluation,
best-checkpoint selection, early stopping and a wall-clock budget. The math lives in tower.py / loss.py.
"""

from __future__ import annotations

import copy
import io
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from index.evaluation import evaluate_dense

from .config import ModelConfig
from .data import DataError, Dataset
from .encoder import Encoder
from .featurizer import Vocab, detect_lang, split_words, word_ngrams
from .io import LoadedModel, save_model
from .loss import dssm_loss
from .sampler import NegativeSampler
from .tower import LSTMDSSM, Packed


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    negatives: int = 4  # J sampled documents per query, besides the in-batch ones (DSSM: 4)
    hard_negatives: int = 0  # mine this many BM25 top hits per training query as hard negatives (0: off)
    hard_fraction: float = 0.5  # share of the J sampled negatives drawn from the BM25 hits
    max_minutes: float | None = None  # whole wall clock of the run, dev evaluations included
    patience: int = 3  # epochs without a better dev NDCG@10 before stopping
    grad_clip: float = 1.0
    seed: int = 0
    dev_max_queries: int | None = None  # evaluate on at most this many dev queries (speed)
    augment: float = 0.0  # pseudo-queries (random spans of corpus documents) per real pair, each epoch
    show_progress: bool = True


@dataclass
class TrainResult:
    best_epoch: int
    best_dev: dict[str, float]
    history: list[dict[str, Any]]
    seconds: float
    stopped: str


def build_vocab(data: Dataset, cfg: ModelConfig, min_count: int = 2) -> Vocab:
    """Vocabulary from the training queries and the corpus as the model reads it (first words)."""
    train_q = [data.queries[q] for q in data.split("train")]
    docs = data.corpus.full_texts()
    cut = [" ".join(t.split()[: cfg.doc_max_words * 2]) for t in docs]  # bound the work on long docs
    return Vocab.build(train_q + cut, size=cfg.vocab_size, num_buckets=cfg.num_buckets, lang=cfg.lang, min_count=min_count)


def resolve_lang(data: Dataset, lang: str) -> str:
    if lang != "auto":
        return lang
    sample = [data.queries[q] for q in list(data.split("train"))[:2000]] + data.corpus.texts[:2000]
    return detect_lang(sample)


def plot_curve(history: list[dict[str, Any]]) -> bytes | None:
    """The training curve (loss and dev NDCG@10 per epoch) as PNG bytes; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ep = [h["epoch"] for h in history if h.get("loss") is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [h["loss"] for h in history if h.get("loss") is not None], "o-", color="tab:red", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss")
    dev = [(h["epoch"], h["dev"]["ndcg@10"]) for h in history if h.get("dev")]
    if dev:
        ax2 = ax.twinx()
        ax2.plot([e for e, _ in dev], [v for _, v in dev], "s-", color="tab:blue", label="dev NDCG@10")
        ax2.set_ylabel("dev NDCG@10")
        fig.legend(loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


class Trainer:
    def __init__(
        self,
        data: Dataset,
        model_cfg: ModelConfig,
        cfg: TrainConfig,
        init: LoadedModel | None = None,
        log: Callable[[str], None] = print,
        started: float | None = None,
    ) -> None:
        self.t0 = started if started is not None else time.monotonic()
        self.data, self.cfg, self.log = data, cfg, log
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        train = data.split("train")
        if not train:
            raise DataError(f"{data.name}: the train split has no pairs")
        if len(data.corpus) < 2:
            raise DataError(f"{data.name}: the corpus needs at least two documents")
        if init is not None:
            # Fine-tuning keeps the network's shape and the vocabulary it was trained with.
            self.model, self.vocab = init.model, init.vocab
            self.model_cfg = init.model.cfg
        else:
            self.model_cfg = model_cfg
            self.vocab = build_vocab(data, model_cfg)
            # The config records the real learned-vocabulary size (a small corpus has fewer n-grams).
            self.model_cfg.vocab_size = len(self.vocab.ngrams)
            self.model = LSTMDSSM(self.model_cfg)
        mc = self.model_cfg
        corpus = data.corpus
        self.doc_index = {d: i for i, d in enumerate(corpus.ids)}
        self.doc_feats = self.vocab.featurize(corpus.full_texts(), mc.doc_max_words)
        # The words of each document as the model reads them, for pseudo-queries (augment > 0).
        self.doc_words = (
            [split_words(t)[: mc.doc_max_words] for t in corpus.full_texts()] if cfg.augment > 0 else []
        )
        self.qids = list(train)
        self.q_feats = self.vocab.featurize([data.queries[q] for q in self.qids], mc.query_max_words)
        self.relevant = [{self.doc_index[d] for d in train[q]} for q in self.qids]
        self.pairs = [(qi, di) for qi, rel in enumerate(self.relevant) for di in sorted(rel)]
        hard = self._mine_hard() if cfg.hard_negatives > 0 else None
        self.sampler = NegativeSampler(len(corpus), self.relevant, hard, cfg.hard_fraction, seed=cfg.seed)
        self.dev = data.qrels.get("dev") or {}
        if cfg.dev_max_queries and len(self.dev) > cfg.dev_max_queries:
            keep = sorted(self.dev)[: cfg.dev_max_queries]
            self.dev = {q: self.dev[q] for q in keep}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _mine_hard(self) -> list[list[int]]:
        from index.lexical import BM25

        self.log(f"mining {self.cfg.hard_negatives} BM25 hard negatives per training query")
        bm = BM25(self.model_cfg.lang).index(self.data.corpus.full_texts())
        idx, _ = bm.search([self.data.queries[q] for q in self.qids], self.cfg.hard_negatives)
        return [list(map(int, row)) for row in idx]

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def budget_left(self) -> float:
        if self.cfg.max_minutes is None:
            return float("inf")
        return self.cfg.max_minutes * 60 - self.elapsed()

    def evaluate(self) -> dict[str, float] | None:
        if not self.dev:
            return None
        self.model.eval()
        ev = evaluate_dense(Encoder(self.model, self.vocab), self.data, self.dev)
        self.model.train()
        return ev.metrics

    def pseudo_query(self, d: int, rng: random.Random) -> list[list[int]]:
        """A random contiguous span (30–70% of the words) of document d, featurized as a query.

        Self-supervision from the corpus itself: it teaches the towers to match the words a query
        shares with a document across the whole corpus vocabulary, not only the training queries'.
        """
        words = self.doc_words[d]
        n = len(words)
        if n == 0:
            return []
        span = rng.randint(max(1, round(0.3 * n)), max(1, round(0.7 * n)))
        start = rng.randint(0, n - span)
        grams = word_ngrams(words[start : start + span])[: self.model_cfg.query_max_words]
        return [[self.vocab.id(g) for g in w] for w in grams]

    def step(self, batch: list[tuple[int, int]], rng: random.Random | None = None) -> float:
        """One optimiser step. A pair (q, d) with q < 0 is a pseudo-query made from document d."""
        qs = [q for q, _ in batch]
        cands = [d for _, d in batch]
        rels = [self.relevant[q] if q >= 0 else {d} for q, d in batch]
        q_feats = [self.q_feats[q] if q >= 0 else self.pseudo_query(d, rng or random.Random(0)) for q, d in batch]
        for q, rel in zip(qs, rels, strict=True):
            negs = self.sampler.sample(q, self.cfg.negatives) if q >= 0 else self.sampler.sample_excluding(rel, self.cfg.negatives)
            cands.extend(negs)
        # exclude[i, j]: candidate j is relevant to query i, so it is no negative for it.
        exclude = torch.tensor([[d in rel for d in cands] for rel in rels], dtype=torch.bool)
        qv = self.model.query(Packed.from_lists(q_feats))  # (B, D)
        dv = self.model.doc(Packed.from_lists([self.doc_feats[d] for d in cands]))  # (B + B·J, D)
        loss = dssm_loss(qv, dv, self.model.gamma, exclude)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        return loss.detach().item()

    def fit(self) -> TrainResult:
        cfg = self.cfg
        history: list[dict[str, Any]] = []
        t_eval = time.monotonic()
        dev0 = self.evaluate()
        eval_cost = time.monotonic() - t_eval
        history.append({"epoch": 0, "loss": None, "dev": dev0, "elapsed_s": round(self.elapsed(), 1)})
        if dev0:
            self.log(f"epoch 0 (untrained): dev ndcg@10 {dev0['ndcg@10']:.4f}")
        best_score, best_epoch = (dev0["ndcg@10"] if dev0 else float("-inf")), 0
        best_state = copy.deepcopy(self.model.state_dict())
        bad_epochs, stopped = 0, "epochs"
        rng = random.Random(cfg.seed)
        self.model.train()
        for epoch in range(1, cfg.epochs + 1):
            order = self.pairs[:]
            if cfg.augment > 0:  # fresh pseudo-queries each epoch, from random documents
                n_aug = round(cfg.augment * len(self.pairs))
                order += [(-1, rng.randrange(len(self.doc_words))) for _ in range(n_aug)]
            rng.shuffle(order)
            batches = [order[s : s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
            total, n, t_ep, out_of_time = 0.0, 0, time.monotonic(), False
            bar = tqdm(batches, desc=f"epoch {epoch}", disable=not cfg.show_progress, unit="batch", leave=False)
            for batch in bar:
                # Stop early enough to leave time for a dev evaluation and the final save.
                if self.budget_left() < eval_cost * 1.2 + 10:
                    out_of_time = True
                    break
                total += self.step(batch, rng) * len(batch)
                n += len(batch)
                bar.set_postfix(loss=f"{total / n:.4f}", pairs_s=f"{n / (time.monotonic() - t_ep):.0f}")
            bar.close()
            if n == 0:
                stopped = "time"
                break
            t_eval = time.monotonic()
            dev = self.evaluate()
            eval_cost = time.monotonic() - t_eval
            rec = {
                "epoch": epoch,
                "loss": total / n,
                "pairs": n,
                "pairs_per_s": round(n / (t_eval - t_ep), 1),
                "dev": dev,
                "elapsed_s": round(self.elapsed(), 1),
            }
            history.append(rec)
            score = dev["ndcg@10"] if dev else -(total / n)
            msg = f"epoch {epoch}: loss {rec['loss']:.4f}, {rec['pairs_per_s']} pairs/s"
            if dev:
                msg += f", dev ndcg@10 {dev['ndcg@10']:.4f} mrr@10 {dev['mrr@10']:.4f} r@100 {dev['recall@100']:.4f}"
            self.log(msg)
            if score > best_score:
                best_score, best_epoch, bad_epochs = score, epoch, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                bad_epochs += 1
            if out_of_time:
                stopped = "time"
                break
            if bad_epochs >= cfg.patience:
                stopped = "early"
                break
        self.model.load_state_dict(best_state)
        self.model.eval()
        best_dev = next((h["dev"] for h in history if h["epoch"] == best_epoch), None) or {}
        return TrainResult(best_epoch, best_dev, history, self.elapsed(), stopped)

    def save(self, out_dir: str | Path, result: TrainResult) -> None:
        training = {
            **asdict(self.cfg),
            "dataset": self.data.name,
            "train_pairs": len(self.pairs),
            "best_epoch": result.best_epoch,
            "stopped": result.stopped,
            "seconds": round(result.seconds, 1),
        }
        metrics = {"best_epoch": result.best_epoch, "best_dev": result.best_dev, "epochs": result.history}
        extra = {"metrics.json": (json.dumps(metrics, indent=2) + "\n").encode()}
        png = plot_curve(result.history)
        if png:
            extra["training_curve.png"] = png
        save_model(self.model, self.vocab, out_dir, training=training, extra_files=extra)
