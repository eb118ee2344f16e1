#!/usr/bin/env python
"""Train an LSTM-DSSM on (query, relevant document) pairs.

    python scripts/train.py --data DATASET --out MODEL_DIR [--lang auto|en|zh] [--preset en|zh|demo]
        [--epochs N] [--max-minutes M] [--batch-size B] [--seed S] [--init MODEL_DIR] ...

DATASET is a BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/dev.tsv) or a pairs
file (TSV ``query<TAB>document`` or JSONL ``{"query", "document"}``).

Settings come from, in order (later wins): the defaults of ModelConfig/TrainConfig (models/config.py),
the language's preset (en or zh, models/presets.py), the --preset named, and the flags given here.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import torch

from cli._run import UsageError, run_cli
from common.fs import ForeignFolderError, guard_target
from index.build import fit_model_fusion
from index.errors import IndexBuildError
from models.augment import rewrite_probs
from models.config import ModelConfig, TrainConfig
from models.cooc_init import init_model_cooc
from models.data import DataError, Dataset, load_dataset
from models.encoder import Encoder
from models.featurizer import Vocab
from models.io import is_model_dir, load_model, write_fusion
from models.lexical_teacher import LexicalTeacher
from models.prepare import mine_hard_negatives, new_model, resolve_lang, train_query_ids
from models.presets import PRESETS, merged, resolve
from models.teacher import Teacher, TeacherUnavailable, cached_embed, teacher_vectors
from models.tower import LSTMDSSM
from models.training import Trainer, check_watch, watched_text
from models.word_init import init_model_words

# Fields with an option of their own below (or none: free-form notes).
_SKIP = {"lang", "extra", "show_progress"}


def parse_bool(s: str) -> bool | None:
    v = s.strip().lower()
    if v in ("yes", "true", "1", "on"):
        return True
    if v in ("no", "false", "0", "off"):
        return False
    if v == "auto":
        return None  # the preset's value
    raise argparse.ArgumentTypeError(f"expected yes/no (or auto), got {s!r}")


def add_field_options(group: argparse._ArgumentGroup, cls: type) -> None:
    """One option per dataclass field: type, choices and help from the field; default None = "not given"
    (the preset or the dataclass default applies), so defaults live only in models/config.py and presets."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in _SKIP:
            continue
        t = hints[f.name]
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
            t = args[0]  # float | None → float
        default = f.default if f.default is not MISSING else None
        help_ = f.metadata.get("help", "").replace("%", "%%") + f" (default: {default}"
        pre = {p: v[f.name] for p, v in PRESETS.items() if f.name in v}
        help_ += "".join(f"; {p}: {v}" for p, v in pre.items()) + ")"
        kw: dict[str, Any] = {"default": None, "help": help_, "dest": f.name}
        if t is bool:
            kw.update(type=parse_bool, nargs="?", const=True, metavar="yes|no")
        elif typing.get_origin(t) is typing.Literal:
            kw.update(choices=list(typing.get_args(t)))
        else:
            kw.update(type=t)
        group.add_argument("--" + f.name.replace("_", "-"), **kw)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="BEIR folder or pairs file (.tsv/.jsonl)")
    p.add_argument("--out", required=True, help="model directory to write (replaced atomically)")
    p.add_argument("--lang", choices=["auto", "en", "zh"], default="auto")
    p.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="a named recipe on top of the language's own (models/presets.py); flags override it")
    p.add_argument("--init", help="continue training (fine-tune) this model directory")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    p.add_argument("--watch-data", action="append", default=[], metavar="DIR",
                   help="also score this dataset's dev split after every epoch (e.g. real users' questions "
                        "over the same corpus): logged and in metrics.json, never used to choose the epoch; "
                        "repeatable, each with a name (its folder's) of its own")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_field_options(p.add_argument_group("training"), TrainConfig)
    add_field_options(p.add_argument_group("model"), ModelConfig)
    a = p.parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.embed_lr is not None and not (math.isfinite(a.embed_lr) and a.embed_lr >= 0):
        p.error("--embed-lr must be 0 (frozen) or more")
    if a.word_init_words is not None and a.word_init_words < 2:
        p.error("--word-init-words must be at least 2")
    if a.cooc_window is not None and a.cooc_window < 1:
        p.error("--cooc-window must be at least 1")
    if a.max_minutes is not None and a.max_minutes <= 0:
        p.error("--max-minutes must be positive")
    if a.ema is not None and not (a.ema == 0 or 0 < a.ema < 1):
        p.error("--ema must be 0 (off) or a decay between 0 and 1, e.g. 0.998")
    if a.ema_warmup is not None and not (math.isfinite(a.ema_warmup) and a.ema_warmup > 1):
        p.error("--ema-warmup must be a number above 1 (10: the average spans the last ninth of the steps)")
    if a.distill_geometry is not None and not (math.isfinite(a.distill_geometry) and a.distill_geometry >= 0):
        p.error("--distill-geometry must be 0 (off) or more")
    if a.distill_fade is not None and not 0 <= a.distill_fade <= 1:  # NaN fails it too
        p.error("--distill-fade must be a share of the run between 0 (off) and 1")
    if a.query_aug_ops is not None:
        try:
            rewrite_probs(a.query_aug_ops)
        except ValueError as e:
            p.error(f"--query-aug-ops: {e}")
    return a


def check_out(out: Path) -> None:
    """Refuse to replace a non-empty folder that is not a model directory."""
    try:
        guard_target(out, is_model_dir, "an LSTM-DSSM model directory")
    except ForeignFolderError as e:
        raise UsageError(f"--out {e}") from e


def load_watched(paths: list[str], data: Dataset) -> list[Dataset]:
    """The ``--watch-data`` sets, loaded and checked (a dev split each, names of their own) before any
    slow work, so a mistake costs seconds, not a teacher's encoding. A pairs file's dev split is its
    hashed tenth, as for ``--data``."""
    watch = []
    for p in paths:
        try:
            watch.append(load_dataset(p))
            check_watch(watch, data.name)
        except DataError as e:
            raise UsageError(f"--watch-data {p}: {e}") from e
    return watch


def given(a: argparse.Namespace) -> dict[str, Any]:
    """The dataclass fields set on the command line."""
    names = {f.name for cls in (ModelConfig, TrainConfig) for f in fields(cls)} - _SKIP
    out = {n: getattr(a, n) for n in names if getattr(a, n, None) is not None}
    if a.quiet:
        out["show_progress"] = False
    return out


def load_teacher(name: str) -> tuple[Teacher | None, str | None]:
    """(the teacher, None), or (None, why not) when its extra is not installed: one instance serves both
    --distill and --word-init, so its weights are hashed and loaded once."""
    try:
        return Teacher(name), None
    except TeacherUnavailable as e:
        return None, str(e)


def init_table(texts: list[str], model: LSTMDSSM, vocab: Vocab, tcfg: TrainConfig, teacher: Teacher | None,
               missing: str | None, fine_tuning: bool, log: Callable[[str], None]) -> tuple[dict[str, Any] | None, str | None]:
    """``--word-init teacher`` or ``cooc`` on ``texts`` (the training questions and the documents): (record,
    None), or (None, why not) when fine-tuning, or for the teacher when the text is not English or the
    teacher is ``missing``; training then goes on from the model's table (``tcfg.word_init`` set back to
    random, as a missing teacher sets ``distill`` to 0) and says so."""
    mode = tcfg.word_init
    if fine_tuning:
        why = f"--word-init {mode}: not when fine-tuning (--init keeps the model's own table)"
    elif mode == "cooc":
        return init_model_cooc(model, vocab, texts, window=tcfg.cooc_window, log=log), None
    elif model.cfg.lang != "en":
        why = f"--word-init teacher: {tcfg.teacher} reads English only"
    elif teacher is None:
        why = f"--word-init teacher: {missing}"
    else:
        try:
            return init_model_words(model, vocab, texts, tcfg.teacher,
                                    lambda words: cached_embed(teacher, words, tcfg.teacher_cache, log, "words"),
                                    max_words=tcfg.word_init_words, log=log), None
        except ValueError as e:
            why = f"--word-init teacher: {e}"
    log(f"warning: {why}; the n-gram table starts {'as the model had it' if fine_tuning else 'random'} "
        "(the rest of the recipe is unchanged)")
    tcfg.word_init = "random"
    return None, why


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    a = parse_args(argv)
    out = Path(a.out)
    check_out(out)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load_dataset(a.data)
    watch = load_watched(a.watch_data, data)
    init = load_model(a.init) if a.init else None
    lang = init.config.lang if init else resolve_lang(data, a.lang)
    mcfg, tcfg = resolve(lang, a.preset, given(a))
    settings = merged(lang, a.preset, given(a))
    print(f"data {data.name}: {len(data.corpus)} documents, "
          + ", ".join(f"{s} {len(q)} queries" for s, q in data.qrels.items()) + f"; lang {lang}"
          + (f"; preset {a.preset}" if a.preset else ""), flush=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    if init is not None:
        model, vocab = init.model, init.vocab  # fine-tuning keeps the network's shape and vocabulary
    else:
        model, vocab = new_model(data, mcfg, tcfg.seed)
    mc = model.cfg
    hard = mine_hard_negatives(data, tcfg.hard_negatives, mc.lang, log) if tcfg.hard_negatives > 0 else None
    # The texts every teacher reads: the training questions and the documents (title + text).
    train_q, docs = [data.queries[q] for q in train_query_ids(data)], data.corpus.full_texts()
    general, missing = load_teacher(tcfg.teacher) if tcfg.distill > 0 or tcfg.word_init == "teacher" else (None, None)
    teacher, fallback = None, None
    if tcfg.distill > 0:
        log(f"distilling from {tcfg.teacher} (weight {tcfg.distill}, τ {tcfg.distill_tau}"
            + (f"; its neighbourhoods, weight {tcfg.distill_geometry}" if tcfg.distill_geometry > 0 else "")
            + ("; its top swapped with the labelled document where they differ" if tcfg.distill_adjust == "swap" else "")
            + (f"; fading towards 0 over the run's last {100 * tcfg.distill_fade:g}%" if tcfg.distill_fade > 0 else "")
            + ")")
        if general is not None:
            teacher = teacher_vectors(train_q, docs, general, mc.doc_max_words, mc.query_max_words, tcfg.teacher_cache,
                                      log, words=vocab.words if tcfg.teacher_cut == "words" and vocab.stopwords else None)
            mc.extra["distilled_from"] = tcfg.teacher
        else:
            fallback = missing
            log(f"warning: {missing}; training WITHOUT distillation (nor the teacher's neighbourhoods; the rest "
                "of the recipe is unchanged)")
            tcfg.distill, tcfg.distill_geometry, tcfg.distill_adjust, tcfg.distill_fade = 0.0, 0.0, "none", 0.0
    else:  # the teacher's neighbourhoods, the swap and the fade ride on its distillation (the en preset sets them all)
        if tcfg.distill_geometry > 0:
            log("--distill-geometry is off: it needs the teacher's vectors, which only --distill > 0 loads")
        tcfg.distill_geometry, tcfg.distill_adjust, tcfg.distill_fade = 0.0, "none", 0.0  # recorded as what the run did
    word_init, word_fallback = None, None
    if tcfg.word_init != "random":
        word_init, word_fallback = init_table(train_q + docs, model, vocab, tcfg, general, missing, init is not None, log)
    if tcfg.word_init == "random" and tcfg.embed_lr == 0 and init is None:
        # The presets freeze the table they fill (en: the teacher's, zh: the co-occurrences'); a random one
        # frozen is what a fallback or an explicit --word-init random gets unless --embed-lr says otherwise.
        log("note: the n-gram table is random and frozen (--embed-lr 0): only the LSTM learns; --embed-lr 1 "
            "trains the table too")
    lexical = None
    if tcfg.lexical_distill > 0:
        log(f"distilling from BM25 over the corpus (weight {tcfg.lexical_distill}, τ {tcfg.lexical_tau})")
        lexical = LexicalTeacher(docs, mc.lang)
    # Three dev evaluations from text stay for the fusion fit below, inside the same --max-minutes (on
    # medquad it loads the saved model, encodes the corpus into a flat index with BM25, and the dev and
    # probe queries: ~35 s against 8-10 s for one such evaluation on this project's 2-core machine).
    trainer = Trainer(data, model, tcfg, log=log, started=started, vocab=vocab, hard_negatives=hard, teacher=teacher,
                      lexical=lexical,
                      reserve_evals=3.0 if data.qrels.get("dev") else 0.0, watch=watch)
    res = trainer.fit()
    trainer.save(out, res, {"preset": a.preset, "lang": lang, "settings": settings, "teacher_fallback": fallback,
                            "word_init_used": word_init, "word_init_fallback": word_fallback,
                            "init": a.init, "argv": sys.argv[1:] if argv is None else argv})
    best = res.best_dev
    msg = f"saved {out} (best epoch {res.best_epoch}, stopped: {res.stopped}, {res.seconds / 60:.1f} min)"
    if best:
        msg += f"; dev ndcg@10 {best['ndcg@10']:.4f} mrr@10 {best['mrr@10']:.4f} recall@100 {best['recall@100']:.4f}"
    print(msg + watched_text(res.best_watch), flush=True)
    # The hybrid fusion the model carries for corpora without judgements (fusion.json; not fingerprinted):
    # fitted on the dev split and on probe queries of the corpus (index/fusion.py choose_model_fusion).
    try:
        fusion = fit_model_fusion(Encoder.load(out), data, max_dev=tcfg.dev_max_queries)
    except IndexBuildError as e:
        raise UsageError(f"the model is saved in {out}, but its hybrid fusion could not be fitted: {e}") from e
    if fusion is not None:
        write_fusion(out, fusion)
        how = fusion["method"] + (f" on {fusion['base']}" if fusion["method"] == "adaptive" else "")
        print(f"hybrid fusion ({fusion['chosen_on']}): {how}; dev ndcg@10 {fusion['dev_ndcg@10']:.4f} "
              f"(dense {fusion['dev_dense_ndcg@10']:.4f}, bm25 {fusion['dev_bm25_ndcg@10']:.4f}); "
              f"{(time.monotonic() - started) / 60:.1f} min in all", flush=True)
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
