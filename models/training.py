"""The training loop (plumbing): batches of (query, relevant document) examples, negatives, dev
evaluation, best-checkpoint selection, early stopping and a wall-clock budget.

The math lives elsewhere: towers in tower.py, the DSSM and distillation losses in loss.py, pseudo-queries
and question rewriting in augment.py, the teacher in teacher.py. What the loop needs from the data
(vocabulary, network, hard negatives, teacher vectors) is made beforehand by prepare.py / teacher.py and
passed in; the loop changes nothing it is given except the network's weights.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from index.evaluation import evaluate_dense

from .augment import inverse_cloze, rewrite_probs, rewrite_query, sentences, span
from .config import ModelConfig, TrainConfig, choice_errors
from .data import DataError, Dataset
from .ema import WeightAverage
from .encoder import Encoder
from .featurizer import Vocab, word_ngrams
from .io import LoadedModel, save_model
from .lexical_teacher import LexicalTeacher, lexical_targets
from .loss import distill_kl, dssm_loss, geometry_kl, other_relevant, swap_to_label
from .plot import plot_curve
from .prepare import new_model, train_query_ids
from .sampler import NegativeSampler
from .schedule import lr_factor, progress, teacher_factor
from .teacher import TeacherVectors
from .tower import LSTMDSSM, Packed

__all__ = ["Example", "TeacherVectors", "TrainConfig", "TrainResult", "Trainer", "check_watch", "watched_text"]

# Kinds of training example: a labelled (question, answer) pair, or a pseudo-query made from a document.
PAIR, SPAN, ICT = 0, 1, 2
Example = tuple[int, int, int]  # (kind, training-query index or -1, corpus index of the positive)


def capped(qrels: dict[str, dict[str, int]], n: int | None) -> dict[str, dict[str, int]]:
    """The first ``n`` queries of a split by id (all when ``n`` is None): ``--dev-max-queries``."""
    return {q: qrels[q] for q in sorted(qrels)[:n]} if n and len(qrels) > n else qrels


def check_watch(watch: Sequence[Dataset], data_name: str) -> None:
    """Watched sets need a dev split and names of their own (the name keys their figures); else DataError."""
    names = [data_name]
    for w in watch:
        if not w.qrels.get("dev"):
            raise DataError(f"{w.name}: a watched dataset needs a dev split (qrels/dev.tsv) to score")
        if w.name in names:
            raise DataError(f"{w.name}: two datasets of this run share that name (it keys the figures)")
        names.append(w.name)


def watched_text(watch: dict[str, dict[str, float]]) -> str:
    """The watched sets' figures as a log line's tail (each epoch's line, and train.py's last one)."""
    return "".join(f"; {n} dev ndcg@10 {m['ndcg@10']:.4f}" for n, m in watch.items())


@dataclass
class TrainResult:
    best_epoch: int
    best_dev: dict[str, float]
    history: list[dict[str, Any]]
    seconds: float
    stopped: str
    best_watch: dict[str, dict[str, float]] = field(default_factory=dict)  # watched sets at the best epoch


def param_groups(model: LSTMDSSM, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: the n-gram tables at ``cfg.embed_lr`` × lr, everything else at lr.

    A frozen table (``embed_lr`` 0) is left out and gets no gradient (``requires_grad`` off, so the backward
    pass skips the (R, E) table's gradient); any other share turns it back on, so a network trained frozen
    and then fine-tuned learns its table again."""
    tables = {id(t.embed.weight): t.embed.weight for t in (model.query, model.doc)}
    for w in tables.values():
        w.requires_grad_(cfg.embed_lr > 0)
    if cfg.embed_lr == 1.0:
        return [{"params": list(model.parameters())}]
    rest = [p for p in model.parameters() if id(p) not in tables]
    slow = [{"params": list(tables.values()), "lr": cfg.lr * cfg.embed_lr}] if cfg.embed_lr > 0 else []
    return [{"params": rest}, *slow]


class Trainer:
    """Trains ``model`` (with its ``vocab``) on the train split of ``data``, choosing the epoch on dev.

    ``model`` may also be a ``ModelConfig``: a fresh network and vocabulary are then made from ``data``
    by ``prepare.new_model`` (or taken from ``init``, a model to fine-tune), leaving the config as given.
    ``hard_negatives[q]``: BM25 hits of training query q (``prepare.mine_hard_negatives``);
    ``teacher``: the teacher's vectors, needed when ``cfg.distill > 0``;
    ``lexical``: BM25 over the corpus as a second teacher, needed when ``cfg.lexical_distill > 0``;
    ``watch``: other datasets whose dev split is scored after every epoch beside the training dev
    (cross-distribution figures, e.g. real users' questions over the same corpus), logged and recorded
    per epoch, never used to choose the epoch.
    """

    def __init__(
        self,
        data: Dataset,
        model: LSTMDSSM | ModelConfig,
        cfg: TrainConfig,
        init: LoadedModel | None = None,
        log: Callable[[str], None] = print,
        started: float | None = None,
        *,
        vocab: Vocab | None = None,
        hard_negatives: Sequence[Sequence[int]] | None = None,
        teacher: TeacherVectors | None = None,
        lexical: LexicalTeacher | None = None,
        reserve_evals: float = 0.0,
        watch: Sequence[Dataset] = (),
    ) -> None:
        # reserve_evals: leave time for this many more dev evaluations from text (the corpus featurized
        # and encoded) after the last epoch, for work the caller does inside the same --max-minutes
        # (train.py fits the model's fusion: 3).
        self.reserve_evals = reserve_evals
        self.t0 = started if started is not None else time.monotonic()
        self.data, self.cfg, self.log = data, cfg, log
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        train = data.split("train")
        if not train:
            raise DataError(f"{data.name}: the train split has no pairs")
        if len(data.corpus) < 2:
            raise DataError(f"{data.name}: the corpus needs at least two documents")
        if isinstance(model, ModelConfig):
            model, vocab = (init.model, init.vocab) if init is not None else new_model(data, model, cfg.seed)
        if vocab is None:
            raise TypeError("Trainer: a network needs its vocabulary (vocab=...)")
        if cfg.distill > 0 and teacher is None:
            raise ValueError("TrainConfig.distill > 0 needs the teacher's vectors (teacher=...)")
        if not cfg.distill_geometry >= 0:
            raise ValueError(f"TrainConfig.distill_geometry must be 0 (off) or more, not {cfg.distill_geometry}")
        if not 0 <= cfg.distill_fade <= 1:
            raise ValueError(f"TrainConfig.distill_fade must be a share of the run between 0 and 1, not {cfg.distill_fade}")
        if bad := choice_errors(cfg):
            raise ValueError("TrainConfig." + "; ".join(bad))
        if cfg.distill_geometry > 0 and cfg.distill <= 0:
            raise ValueError("TrainConfig.distill_geometry > 0 needs distill > 0 (the teacher's vectors)")
        if cfg.word_init != "random" and "word_init_from" not in model.cfg.extra:
            raise ValueError(f"TrainConfig.word_init {cfg.word_init!r} needs a network whose table was set first "
                             "(models.word_init.init_model_words, models.cooc_init.init_model_cooc)")
        if cfg.lexical_distill > 0 and lexical is None:
            raise ValueError("TrainConfig.lexical_distill > 0 needs the corpus's BM25 teacher (lexical=...)")
        self.model, self.vocab, self.teacher = model, vocab, teacher if cfg.distill > 0 else None
        self.lexical = lexical if cfg.lexical_distill > 0 else None
        mc = self.model_cfg = model.cfg
        corpus = data.corpus
        self.doc_index = {d: i for i, d in enumerate(corpus.ids)}
        self.doc_texts = corpus.full_texts()
        t_feat = time.monotonic()
        self.doc_feats = self.vocab.featurize(self.doc_texts, mc.doc_max_words)
        # What featurizing the corpus costs: the epochs' dev evaluations reuse these features, but work
        # after training that reads the corpus from text (the fusion fit) pays it again.
        self.featurize_cost = time.monotonic() - t_feat
        # The words of each document as the model reads them, for span pseudo-queries.
        self.doc_words = [self.vocab.words(t)[: mc.doc_max_words] for t in self.doc_texts] if cfg.augment > 0 else []
        self.qids = train_query_ids(data)
        self.q_texts = [data.queries[q] for q in self.qids]
        self.q_feats = self.vocab.featurize(self.q_texts, mc.query_max_words)
        self.relevant = [{self.doc_index[d] for d in train[q]} for q in self.qids]
        self.pairs = [(qi, di) for qi, rel in enumerate(self.relevant) for di in sorted(rel)]
        if self.lexical is not None and self.lexical.weights.shape[0] != len(corpus):
            raise ValueError("the BM25 teacher does not match the corpus")
        # The training questions' BM25 terms, tokenised once (rewritten or pseudo-queries: per step).
        self.q_terms = self.lexical.query_terms(self.q_texts) if self.lexical is not None else []
        if teacher is not None and (len(teacher.queries) != len(self.qids) or len(teacher.docs) != len(corpus)):
            raise ValueError("teacher vectors do not match the training queries / corpus")
        # Context sentences for rewritten questions: short sentences of the corpus (fixed sample).
        self.context: list[str] = []
        self.rewrite = rewrite_probs(cfg.query_aug_ops)  # ValueError names the choices
        if cfg.query_aug > 0 and self.rewrite["p_context"] > 0:
            crng = random.Random(cfg.seed)
            pool = [s for t in crng.sample(self.doc_texts, min(3000, len(self.doc_texts))) for s in sentences(t)]
            self.context = [s for s in pool if 4 <= len(s.split()) <= 20]
        self.sampler = NegativeSampler(len(corpus), self.relevant, hard_negatives, cfg.hard_fraction, seed=cfg.seed)
        self.dev = capped(data.qrels.get("dev") or {}, cfg.dev_max_queries)
        self.opt = torch.optim.AdamW(param_groups(self.model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.peak_lrs = [g["lr"] for g in self.opt.param_groups]  # what --lr-schedule scales, step by step
        # WeightAverage refuses a decay outside (0, 1) and a warm-up constant of 1 or less.
        self.average = WeightAverage(self.model, cfg.ema, cfg.ema_warmup) if cfg.ema != 0 else None
        check_watch(watch, data.name)
        # Each watched set with its capped dev split and its corpus featurized once, as the training corpus is.
        self.watch = [(w, capped(w.split("dev"), cfg.dev_max_queries),
                       self.vocab.featurize(w.corpus.full_texts(), mc.doc_max_words)) for w in watch]

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def budget_left(self) -> float:
        if self.cfg.max_minutes is None:
            return float("inf")
        return self.cfg.max_minutes * 60 - self.elapsed()

    def held_back(self, dev_cost: float, watch_cost: float) -> float:
        """Seconds a run keeps for what follows its last step: that epoch's evaluations (dev and watched,
        with a margin), the caller's reserved dev evaluations from text and the final save."""
        return (dev_cost + watch_cost) * 1.2 + (dev_cost + self.featurize_cost) * self.reserve_evals + 10

    def _dev_metrics(self, data: Dataset, qrels: dict[str, dict[str, int]], doc_feats: list[list[list[int]]]
                     ) -> dict[str, float]:
        """Metrics of the current weights on ``qrels`` over ``data``'s corpus (exact search); back to training.
        ``doc_feats``: that corpus featurized for the document tower, once per run (the texts never change,
        and featurizing medquad's 15,250 documents was a third of each epoch's dev evaluation)."""
        enc = Encoder(self.model, self.vocab)  # Encoder puts the model in eval mode
        ev = evaluate_dense(enc, data, qrels, doc_vectors=enc.encode_features(doc_feats, tower="document"))
        self.model.train()
        return ev.metrics

    def evaluate(self) -> dict[str, float] | None:
        return self._dev_metrics(self.data, self.dev, self.doc_feats) if self.dev else None

    def evaluate_watch(self) -> dict[str, dict[str, float]]:
        """Dev metrics of each watched dataset, by its name."""
        return {w.name: self._dev_metrics(w, dev, feats) for w, dev, feats in self.watch}

    def evaluate_all(self) -> tuple[dict[str, float] | None, dict[str, dict[str, float]], float, float]:
        """(dev metrics, watched sets' metrics, seconds of each): the budget reserves them apart, since
        the work after training (the fusion fit) repeats the dev evaluation only."""
        t0 = time.monotonic()
        dev = self.evaluate()
        t1 = time.monotonic()
        watch = self.evaluate_watch()
        return dev, watch, t1 - t0, time.monotonic() - t1

    # -- examples -------------------------------------------------------------------------------------

    def span_words(self, d: int, rng: random.Random) -> list[str]:
        """A random contiguous span (30–70 % of the words) of document d as the model reads it."""
        words = self.doc_words[d] if self.doc_words else self.vocab.words(self.doc_texts[d])[: self.model_cfg.doc_max_words]
        s, e = span(len(words), rng)
        return words[s:e]

    def pseudo_query(self, d: int, rng: random.Random) -> list[list[int]]:
        """The featurized span query of document d (self-supervision from the corpus itself)."""
        return self._span_query(d, rng)[0]

    def _span_query(self, d: int, rng: random.Random) -> tuple[list[list[int]], str]:
        words = self.span_words(d, rng)
        grams = word_ngrams(words)[: self.model_cfg.query_max_words]
        return [[self.vocab.id(g) for g in w] for w in grams], " ".join(words)

    def example(self, ex: Example, rng: random.Random) -> tuple[list[list[int]], list[list[int]], set[int], int, str | None]:
        """(query features, positive's features, documents relevant to the query, teacher row, query text).

        Teacher row ≥ 0 indexes ``teacher.queries``; −(d + 1) means "document d's teacher vector stands for
        the query" (a pseudo-query is a piece of d, so the teacher's view of d is its best proxy without
        encoding every sampled sentence). Query text: what BM25 reads as the query, None for a training
        question as it is (its terms are tokenised once, ``q_terms``).
        """
        kind, q, d = ex
        mc = self.model_cfg
        if kind == PAIR:
            if self.cfg.query_aug > 0 and rng.random() < self.cfg.query_aug:
                text = rewrite_query(self.q_texts[q], rng, self.context, **self.rewrite)
                return self.vocab.encode(text, mc.query_max_words), self.doc_feats[d], self.relevant[q], q, text
            return self.q_feats[q], self.doc_feats[d], self.relevant[q], q, None
        if kind == ICT:
            pair = inverse_cloze(self.doc_texts[d], rng, keep=self.cfg.ict_keep, window_words=3 * mc.doc_max_words)
            if pair is not None:
                sent, passage = pair
                return (self.vocab.encode(sent, mc.query_max_words), self.vocab.encode(passage, mc.doc_max_words),
                        {d}, -(d + 1), sent)
        feats, text = self._span_query(d, rng)
        return feats, self.doc_feats[d], {d}, -(d + 1), text

    def epoch_examples(self, rng: random.Random) -> list[Example]:
        order: list[Example] = [(PAIR, q, d) for q, d in self.pairs]
        n_docs = len(self.doc_texts)
        for kind, rate in ((SPAN, self.cfg.augment), (ICT, self.cfg.ict)):
            if rate > 0:  # fresh pseudo-queries each epoch, from random documents
                order += [(kind, -1, rng.randrange(n_docs)) for _ in range(round(rate * len(self.pairs)))]
        rng.shuffle(order)
        return order

    # -- one step -------------------------------------------------------------------------------------

    def step(self, batch: Sequence[Example], rng: random.Random | None = None, teacher_weight: float = 1.0) -> float:
        """One optimiser step on B examples (B positives + B·J sampled negatives as candidates).
        teacher_weight: the share of their weights the teacher's terms carry this step (0: skipped)."""
        rng = rng or random.Random(0)
        made = [self.example(ex, rng) for ex in batch]
        q_feats = [m[0] for m in made]
        cand_feats = [m[1] for m in made]
        cands = [ex[2] for ex in batch]  # corpus index of every candidate; the first B are the positives
        rels = [m[2] for m in made]
        for (kind, q, _), rel in zip(batch, rels, strict=True):
            negs = self.sampler.sample(q, self.cfg.negatives) if kind == PAIR else self.sampler.sample_excluding(rel, self.cfg.negatives)
            cands.extend(negs)
            cand_feats.extend(self.doc_feats[n] for n in negs)
        # exclude[i, j]: candidate j is relevant to query i, so it is no negative for it.
        exclude = torch.tensor([[d in rel for d in cands] for rel in rels], dtype=torch.bool)  # (B, N)
        qv = self.model.query(Packed.from_lists(q_feats))  # (B, D) unit
        dv = self.model.doc(Packed.from_lists(cand_feats))  # (N, D) unit, N = B + B·J
        loss = dssm_loss(qv, dv, self.model.gamma, exclude)
        student_cos = qv @ dv.t()  # (B, N), what the teachers' distributions are matched on
        if self.teacher is not None and teacher_weight > 0:
            rows = [m[3] for m in made]
            tq = torch.stack([self.teacher.queries[r] if r >= 0 else self.teacher.docs[-r - 1] for r in rows])  # (B, Dt)
            td = self.teacher.docs[cands]  # (N, Dt)
            t_cos = tq @ td.t()  # (B, N)
            if self.cfg.distill_adjust == "swap":
                t_cos = swap_to_label(t_cos, exclude)
            w = teacher_weight * self.cfg.distill
            loss = loss + w * distill_kl(student_cos, t_cos, self.model.gamma, self.cfg.distill_tau, exclude)
            if self.cfg.distill_geometry > 0:
                w = teacher_weight * self.cfg.distill_geometry
                loss = loss + w * self.geometry_loss(qv, dv, tq, td, rows, cands)
        if self.lexical is not None:
            loss = loss + self.cfg.lexical_distill * self.lexical_loss(batch, made, student_cos, cands, exclude)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        return loss.detach().item()

    def geometry_loss(self, qv: torch.Tensor, dv: torch.Tensor, tq: torch.Tensor, td: torch.Tensor,
                      rows: Sequence[int], cands: Sequence[int]) -> torch.Tensor:
        """The teacher's neighbourhoods among the batch's documents and among its queries, half each.
        qv (B, D), dv (N, D): the student's unit vectors; tq (B, Dt), td (N, Dt): the teacher's; rows: each
        query's teacher row (equal rows: one text); cands: each document's corpus index."""
        tau, gamma = self.cfg.distill_tau, self.model.gamma
        c, r = torch.tensor(cands), torch.tensor(rows)
        docs = geometry_kl(dv, td, gamma, tau, c[:, None] == c[None, :])
        queries = geometry_kl(qv, tq, gamma, tau, r[:, None] == r[None, :])
        return 0.5 * (docs + queries)

    def lexical_loss(self, batch: Sequence[Example], made: Sequence[tuple[Any, ...]], student_cos: torch.Tensor,
                     cands: Sequence[int], exclude: torch.Tensor) -> torch.Tensor:
        """KL from BM25's softmax over each query's candidates to the student's (rows BM25 has no opinion on
        left out). student_cos, exclude: (B, N)."""
        assert self.lexical is not None
        texts = [m[4] for m in made]
        fresh = iter(self.lexical.query_terms([t for t in texts if t is not None]))
        terms = [next(fresh) if t is not None else self.q_terms[ex[1]] for ex, t in zip(batch, texts, strict=True)]
        scores = self.lexical.scores(terms, cands)  # (B, N)
        # Other documents relevant to query i are no candidates of it: out before the row's best is taken.
        target, keep = lexical_targets(scores.masked_fill(other_relevant(exclude), 0.0))  # (B, N), (B,)
        return distill_kl(student_cos, target, self.model.gamma, self.cfg.lexical_tau, exclude, rows=keep)

    # -- the loop -------------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        cfg = self.cfg
        history: list[dict[str, Any]] = []
        dev0, watch0, dev_cost, watch_cost = self.evaluate_all()
        history.append({"epoch": 0, "loss": None, "dev": dev0, "elapsed_s": round(self.elapsed(), 1),
                        **({"watch": watch0} if watch0 else {})})
        if dev0 or watch0:
            self.log("epoch 0 (untrained): " + (f"dev ndcg@10 {dev0['ndcg@10']:.4f}" if dev0 else "no dev")
                     + watched_text(watch0))
        best_score, best_epoch = (dev0["ndcg@10"] if dev0 else float("-inf")), 0
        best_state = copy.deepcopy(self.model.state_dict())
        bad_epochs, stopped = 0, "epochs"
        rng = random.Random(cfg.seed)
        self.model.train()
        # The schedule's clock: the steps planned (from the first epoch's size) and the training time left
        # before the stop condition below would end the run (the per-epoch evaluations' time counts).
        fit_start = self.elapsed()
        budget = self.budget_left() - self.held_back(dev_cost, watch_cost)
        total_steps, steps = 0, 0
        for epoch in range(1, cfg.epochs + 1):
            order = self.epoch_examples(rng)
            batches = [order[s : s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
            total_steps = total_steps or len(batches) * cfg.epochs
            total, n, t_ep, out_of_time = 0.0, 0, time.monotonic(), False
            bar = tqdm(batches, desc=f"epoch {epoch}", disable=not cfg.show_progress, unit="batch", leave=False)
            for batch in bar:
                if self.budget_left() < self.held_back(dev_cost, watch_cost):
                    out_of_time = True
                    break
                done = progress(steps, total_steps, self.elapsed() - fit_start, budget)
                factor = lr_factor(cfg.lr_schedule, done)
                for group, peak in zip(self.opt.param_groups, self.peak_lrs, strict=True):
                    group["lr"] = peak * factor
                total += self.step(batch, rng, teacher_factor(cfg.distill_fade, done)) * len(batch)
                if self.average is not None:
                    self.average.update()
                steps += 1
                n += len(batch)
                bar.set_postfix(loss=f"{total / n:.4f}", pairs_s=f"{n / (time.monotonic() - t_ep):.0f}")
            bar.close()
            if n == 0:
                stopped = "time"
                break
            t_eval = time.monotonic()
            # With --ema the averaged weights are what is evaluated and kept (without a dev split the epoch is
            # chosen by the live weights' training loss); training goes on from the live weights.
            averaged = self.average.applied() if self.average is not None else nullcontext()
            with averaged:
                dev, watch, dev_cost, watch_cost = self.evaluate_all()
                score = dev["ndcg@10"] if dev else -(total / n)
                better = score > best_score
                if better:
                    best_state = copy.deepcopy(self.model.state_dict())
            rec = {
                "epoch": epoch,
                "loss": total / n,
                "pairs": n,
                "pairs_per_s": round(n / (t_eval - t_ep), 1),
                "dev": dev,
                "elapsed_s": round(self.elapsed(), 1),
                **({"watch": watch} if watch else {}),
            }
            history.append(rec)
            msg = f"epoch {epoch}: loss {rec['loss']:.4f}, {rec['pairs_per_s']} pairs/s"
            if dev:
                msg += f", dev ndcg@10 {dev['ndcg@10']:.4f} mrr@10 {dev['mrr@10']:.4f} r@100 {dev['recall@100']:.4f}"
            self.log(msg + watched_text(watch) + f" ({self.elapsed() / 60:.1f} min)")
            if better:
                best_score, best_epoch, bad_epochs = score, epoch, 0
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
        best = next(h for h in history if h["epoch"] == best_epoch)
        return TrainResult(best_epoch, best["dev"] or {}, history, self.elapsed(), stopped, best.get("watch", {}))

    def record(self, result: TrainResult) -> dict[str, Any]:
        """What training.json holds: the run's settings and what came of them."""
        return {
            **asdict(self.cfg),
            "dataset": self.data.name,
            "train_pairs": len(self.pairs),
            "best_epoch": result.best_epoch,
            "best_dev": result.best_dev,
            **({"best_watch": result.best_watch} if result.best_watch else {}),
            "stopped": result.stopped,
            "seconds": round(result.seconds, 1),
            "teacher_used": self.teacher.record if self.teacher is not None else None,
        }

    def save(self, out_dir: str | Path, result: TrainResult, record: dict[str, Any] | None = None) -> None:
        """The model folder, with ``training.json`` (``record`` adds to it) and ``metrics.json``."""
        training = {**self.record(result), **(record or {})}
        metrics = {"best_epoch": result.best_epoch, "best_dev": result.best_dev, "epochs": result.history,
                   **({"best_watch": result.best_watch} if result.best_watch else {})}
        extra = {"metrics.json": (json.dumps(metrics, indent=2) + "\n").encode()}
        png = plot_curve(result.history)
        if png:
            extra["training_curve.png"] = png
        save_model(self.model, self.vocab, out_dir, training=training, extra_files=extra)
