"""Named training recipes: field overrides of ``ModelConfig`` / ``TrainConfig``, by field name.

Resolution order (``resolve``): dataclass defaults → the language preset (``en``/``zh``, from
``--lang`` or detected) → a named preset (``--preset``) → explicit command-line values. Chosen on the
dev splits of the project's data (README, "Defaults and what they are based on").
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from .config import ModelConfig, TrainConfig

PRESETS: dict[str, dict[str, Any]] = {
    # English: medquad's answers open with their title and question; 32 words keep them and halve the
    # LSTM's work. No sampled negatives (the B−1 in-batch ones remain): ~3x the steps in the same time
    # (6-min runs: medquad dev 0.898 vs 0.883, mediqa_qa dev 0.329 vs 0.286). Distillation from
    # all-MiniLM-L6-v2 (when the teacher extra is installed): medquad dev 0.902, mediqa_qa dev 0.343.
    # No early stop within the 20 epochs (patience 20): medquad dev wanders by ±0.005 between epochs, and
    # patience 3 stopped a quiet 2-core run at 11.2 of its 20 minutes (dev 0.9205, mediqa_qa dev 0.374);
    # running on: best epoch 17 at 16.1 min, dev 0.9264, mediqa_qa dev 0.378. The best epoch is kept.
    # The text vector is the hidden state itself, as in the paper (out_dim 0), of a 192-unit LSTM: with the
    # frozen teacher table below it generalises better than a projection of a 256-unit one to 128 —
    # two 20-min pairs (--seed 1 / 2): mediqa_qa dev 0.454 / 0.439 vs 0.411 / 0.427, the stdlib docs dev
    # 0.205 / 0.195 vs 0.166 / 0.138, medquad dev 0.918 / 0.922 vs 0.923 / 0.923 — at about the same
    # cost a query (encoding a third cheaper, the scan of 192-d vectors longer). The 256-d hidden state
    # alone cost 16 % of the service's requests/s before the table (README, fourth and sixth rounds).
    # A 256-unit LSTM with max pooling gained on real questions in two 20-min pairs (mediqa_qa dev 0.554 /
    # 0.569 vs 0.537 / 0.544) but not in its quiet default run (0.535 vs 0.538; medquad 0.924 vs 0.925,
    # stdlib 0.237 vs 0.239) at 28 % more a query encoded: 192 stays (README, twelfth and thirteenth rounds).
    # The n-gram table starts as the teacher's word meanings and stays there (word_init teacher, embed_lr
    # 0): each of the corpus's frequent words sums to all-MiniLM-L6-v2's vector of it, and only the LSTM
    # (and a projection, where there is one) learns. Two 20-min pairs (--seed 1 / 2): mediqa_qa dev 0.413
    # / 0.413 vs 0.384 / 0.388, the stdlib docs (a domain never seen) dev 0.156 / 0.179 vs 0.138 / 0.147,
    # medquad dev 0.923 / 0.915 vs 0.929 / 0.920. README, fifth lever round. With the frozen table's cheaper steps a
    # quiet 2-thread run finished all 20 epochs in 15 of its 20 minutes, dev still rising: up to 30
    # epochs (the time bound stops it at 24: best epoch 22, medquad dev 0.926 vs 0.923, mediqa_qa dev
    # 0.438 vs 0.418, stdlib dev 0.158 vs 0.162). Distillation still earns its place beside the table:
    # --distill 0 gave medquad dev 0.937 vs 0.923 but mediqa_qa dev 0.382 vs 0.411, stdlib 0.137 vs 0.166
    # (a 20-min pair, --seed 1; README, sixth round).
    # The text vector is the max over the LSTM's hidden states (pooling max), not the state at the last
    # word: with the frozen table and the 192-d state, two 20-min pairs (--seed 1 / 2): mediqa_qa dev
    # 0.546 / 0.516 (mean of epochs 11 on 0.527 / 0.526) vs 0.454 / 0.439 (0.451 / 0.437), the stdlib
    # docs dev 0.193 / 0.216 vs 0.205 / 0.195, medquad dev 0.914 / 0.921 vs 0.918 / 0.922 (README,
    # seventh round). --pooling last gives the paper's own vector.
    # The distillation term keeps its full weight (distill 1). At half weight (distill 0.5) two 20-min
    # pairs (--seed 1 / 2) gave medquad dev 0.931 / 0.931 vs 0.914 / 0.921 but mediqa_qa dev (mean of
    # epochs 11 on) 0.521 / 0.522 vs 0.527 / 0.526 and the stdlib docs dev 0.187 / 0.188 vs 0.193 /
    # 0.216, and its quiet run's own fusion lost on both drifted dev sets (mediqa_qa 0.587 vs 0.601,
    # stdlib 0.419 vs 0.425): the in-distribution gain is paid by the queries this project most needs
    # to serve (README, eighth round).
    # The teacher's neighbourhoods (distill_geometry 1: KL to its softmax over each in-batch document's and
    # query's similarity to the others) and a moving average of the weights (ema 0.998; with its warm-up
    # it spans about the last ninth of the steps so far on medquad, the cap never reached) for what is
    # evaluated and kept. Two 20-min pairs (--seed 1 / 2): medquad dev 0.928 / 0.923 vs 0.914 /
    # 0.921, mediqa_qa dev best 0.544 / 0.533 vs 0.546 / 0.516 (mean of epochs 11 on 0.545 / 0.529 vs
    # 0.527 / 0.526), the stdlib docs dev 0.205 / 0.238 vs 0.193 / 0.216 (README, ninth round).
    # A longer average (ema_warmup 4): until β reaches 0.998 (~1,500 steps, early in epoch 16 on
    # medquad) it spans the last third of the steps so far, not the last ninth; then the last ~5 epochs,
    # not ~3 (with 10 the cap is never reached). Two 20-min pairs (--seed 1 / 2): mediqa_qa dev best
    # 0.555 / 0.540 vs 0.544 / 0.533 (mean of epochs 11 on 0.547 / 0.532 vs 0.545 / 0.529), medquad dev
    # 0.928 / 0.924 vs 0.928 / 0.923, the stdlib docs dev 0.206 / 0.235 vs 0.205 / 0.238: small, the same
    # sign on real questions in both seeds, nothing paid for it (README, eleventh round). The teacher's
    # temperature stays 0.05: 0.1 gained medquad dev (0.932 / 0.933) and lost real questions (0.536 /
    # 0.514), 0.025 lost both.
    # The model skips NLTK's English stop words except the question words (stopwords "nltk-q"), in
    # training and at search time: real users' questions are full of pronouns and auxiliaries ("hi, I
    # would like to know if there is any…"), which the templated training questions taught the LSTM to
    # match. 20-min pairs against the defaults (README, fourteenth round), seed 1 / 2: mediqa_qa dev
    # 0.568 / 0.562 at the best epoch vs 0.537 / 0.544 (mean of epochs 11 on 0.569 / 0.568 vs 0.530 /
    # 0.537), medquad dev 0.922 / 0.920 vs 0.922 / 0.922, the stdlib docs dev 0.243 / 0.251 vs 0.235 /
    # 0.228. NLTK's whole list gained as much on real questions and cost medquad 0.005 in both seeds
    # (the question words tell its templates apart); Lucene's 33 words gained nothing.
    # The teacher keeps its first-32-tokens cut (teacher_cut tokens). Reading on to the student's 32nd
    # content word (teacher_cut words, ~47 tokens on medquad) raised mediqa_qa dev at the best epoch to
    # 0.588 / 0.597 vs 0.568 / 0.562 in two 20-min pairs (seed 1 / 2), medquad dev level, but the
    # model's own fusion lost on the unseen domain's dev (stdlib 0.432 vs 0.452, and 0.425 vs 0.441 in
    # a quiet run, BM25 0.429): target 1's margin gone (README, fifteenth round).
    # The teacher's scores are swapped to the label (distill_adjust swap): where it ranks another in-batch
    # document above the labelled one, the two scores trade places, so the distillation no longer pulls
    # against the DSSM term on the training pairs the teacher gets wrong. Two 20-min pairs (seed 1 / 2):
    # medquad dev 0.926 / 0.926 vs 0.922 / 0.920, mediqa_qa dev 0.581 / 0.575 at the best epoch vs 0.568
    # / 0.562 (mean of epochs 11 on 0.579 / 0.575 vs 0.569 / 0.568), the stdlib docs dev 0.257 / 0.231 vs
    # 0.243 / 0.251. With it at half weight (distill 0.5) medquad rose to 0.929 / 0.927 and real
    # questions gave back all their gain in seed 1, most in seed 2 (0.556 / 0.569 at the best epoch): the
    # eighth round's trade (README, seventeenth round).
    # The teacher fades out over the run's last quarter (distill_fade 0.25: both its terms fall linearly
    # towards 0 at the end), so the last epochs, where the kept one lies, answer more and more to the labels.
    # Two 20-min pairs (seed 1 / 2): medquad dev 0.934 / 0.933 vs 0.926 / 0.926, mediqa_qa dev 0.588 /
    # 0.582 vs 0.581 / 0.575, the stdlib docs dev 0.251 / 0.229 vs 0.257 / 0.231, the model's own fusion
    # there 0.430 / 0.434 vs 0.433 / 0.448 (BM25 0.429); a rerun of the baseline beside each other gave the
    # same medquad (0.926 / 0.926). Over the last half (0.5) medquad reached 0.935 / 0.938, but the unseen
    # domain lost 0.016 / 0.013 and its fusion fell under BM25 (0.422 / 0.427; the quiet run of 0.25 then
    # gave 0.427 too): target 1's margin (README, eighteenth round).
    "en": {"lang": "en", "shared_towers": True, "doc_max_words": 32, "augment": 0.0, "negatives": 0,
           "distill": 1.0, "patience": 20, "word_init": "teacher", "embed_lr": 0.0, "epochs": 30,
           "hidden_dim": 192, "out_dim": 0, "pooling": "max", "distill_geometry": 1.0, "ema": 0.998,
           "ema_warmup": 4.0, "stopwords": "nltk-q", "distill_adjust": "swap",
           "distill_fade": 0.25},
    # Chinese: short page titles; span pseudo-queries help (kuake dev NDCG@10 0.677 with, 0.619 without);
    # no sampled negatives, as for English (no teacher: all-MiniLM-L6-v2 reads English only). The text
    # vector is the LSTM's 256-d hidden state itself, as in the paper (out_dim 0), not a projection to
    # 128: kuake dev 0.735 / 0.743 (--seed 1 / 2) vs 0.715; test 0.745 / 0.753 vs 0.716.
    # The weights' moving average (ema 0.998; no teacher, so no neighbourhoods): two 20-min pairs (--seed
    # 1 / 2, --threads 1): kuake dev 0.733 / 0.749 vs 0.716 / 0.732, above at every epoch (README, ninth round).
    # A quarter of the words dropped in training (word_dropout 0.25, not 0.1): the averaged runs had
    # overfitted by epoch 5-9 (patience stopped seed 1 at epoch 8); with it both ran their 20 minutes, best
    # epochs 11 and 12. Two 20-min pairs: kuake dev 0.758 / 0.757 vs 0.733 / 0.749, test dense 0.756 /
    # 0.763 vs 0.749 / 0.761, hybrid 0.829 / 0.825 vs 0.814 / 0.821 (README, tenth round).
    # No BM25-mined hard negatives: one of BM25's top 20 per pair (--negatives 1 --hard-negatives 20
    # --hard-fraction 1) led at epochs 1-2, then its 30 % slower steps left it level (dev 0.746 vs 0.745,
    # a 20-min pair, --seed 1; README, thirteenth round).
    # The n-gram table starts from the corpus's own co-occurrences and stays there (word_init cooc,
    # embed_lr 0; models/cooc_init.py): kuake_qtr's 4,119 training questions had to teach every
    # character from a random start, and every lever since the tenth round plateaued at 0.745-0.76 dev.
    # 20-min pairs (README, sixteenth round), --seed 1 / 2: kuake dev 0.814 / 0.819 vs 0.745 / 0.755;
    # frozen beat a table learning at 0.1 × lr (0.808) or at lr (0.797, early stop), and with no
    # gradient into the table a step costs half as much (~570 vs ~250 pairs/s at one thread).
    "zh": {"lang": "zh", "shared_towers": True, "doc_max_words": 64, "augment": 1.0, "negatives": 0, "out_dim": 0,
           "ema": 0.998, "word_dropout": 0.25, "word_init": "cooc", "embed_lr": 0.0},
    # The stdlib demo (`make demo`): a smaller model that trains in a few minutes on 2 cores. Max pooling
    # and a higher learning rate reach a useful model in the few epochs that fit (dev NDCG@10 after one
    # epoch: 0.31 vs 0.04 with last-state pooling and lr 2e-3). It sets every lever itself (no teacher:
    # the image has no teacher extra), so changes to the language presets leave the demo as measured.
    "demo": {"embed_dim": 128, "hidden_dim": 128, "out_dim": 128, "doc_max_words": 48, "pooling": "max", "lr": 5e-3,
             "batch_size": 64, "negatives": 4, "augment": 0.0, "ict": 0.0, "query_aug": 0.0, "distill": 0.0,
             "patience": 3, "word_init": "random", "embed_lr": 1.0, "distill_geometry": 0.0, "ema": 0.0,
             "ema_warmup": 10.0, "word_dropout": 0.1, "stopwords": "none"},
}
LANG_PRESETS = ("en", "zh")

_MODEL_FIELDS = {f.name for f in fields(ModelConfig)}
_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


def merged(lang: str, preset: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The field values a run uses beyond the dataclass defaults (later entries win)."""
    if preset is not None and preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r} (have: {', '.join(PRESETS)})")
    out: dict[str, Any] = {}
    if preset not in LANG_PRESETS:  # a named preset that is not a language one rides on the language's
        out.update(PRESETS[lang])
    if preset is not None:
        out.update(PRESETS[preset])
    out.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(out) - _MODEL_FIELDS - _TRAIN_FIELDS
    if unknown:
        raise KeyError(f"not a setting: {', '.join(sorted(unknown))}")
    return out


def resolve(
    lang: str, preset: str | None = None, overrides: dict[str, Any] | None = None
) -> tuple[ModelConfig, TrainConfig]:
    """(ModelConfig, TrainConfig) for ``lang`` with ``preset`` and explicit ``overrides`` (None = unset)."""
    values = merged(lang, preset, overrides or {})
    mc = replace(ModelConfig(), **{k: v for k, v in values.items() if k in _MODEL_FIELDS})
    tc = replace(TrainConfig(), **{k: v for k, v in values.items() if k in _TRAIN_FIELDS})
    return mc, tc
