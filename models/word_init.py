"""Word hashing that starts from a general teacher's word meanings (``--word-init teacher``; training only).

A freshly initialised LSTM-DSSM knows nothing of what words mean: the training pairs teach it the words
they contain, and a word that only real users write ("tummy", "pee") keeps a random vector. Here the
n-gram embedding table starts where the sum of a word's n-gram embeddings (its word vector, the
EmbeddingBag's output) is the teacher's vector of that word alone, for the corpus's most frequent words;
synonyms then start as neighbours, and n-grams shared by related words carry that meaning to words never
fitted. Training then moves the table at ``embed_lr`` × lr (the English default: 0, frozen); the
served model is the LSTM-DSSM alone.

The fit is ridge regression: with A (W, R) counting the n-gram ids of each of W words among the table's R
rows and T (W, E) the words' targets, E* = argmin ‖A E − T‖² + λ‖E‖², solved by (Jacobi-preconditioned)
conjugate gradients on (AᵀA + λI) E = AᵀT (one sparse product a step; R ~60k rows, E 256 columns at
once). Rows no fitted word uses keep their random initialisation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .featurizer import Vocab, split_words, word_ngrams
from .tower import LSTMDSSM

_LATIN_WORD = re.compile(r"[a-z][a-z0-9]*")  # words the English teacher can say something about


def frequent_words(
    texts: Iterable[str], max_words: int, min_count: int = 2, split: Callable[[str], list[str]] = split_words,
) -> tuple[list[str], float]:
    """The ``max_words`` most frequent words of ``texts`` (as ``split`` reads them: a vocabulary's ``words``
    leaves out the stop words its model skips, whose rows need no fit) that start with a
    Latin letter, seen at least ``min_count`` times (ties broken by the word, so the list is deterministic);
    and the share of all word occurrences that are such Latin words (how much of the text the English
    teacher can speak for)."""
    counts: Counter[str] = Counter()
    total = 0
    for t in texts:
        words = split(t)
        total += len(words)
        counts.update(w for w in words if _LATIN_WORD.fullmatch(w))
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return ranked[:max_words], sum(counts.values()) / max(total, 1)


def incidence(vocab: Vocab, words: Sequence[str]) -> Tensor:
    """A (W, R) sparse matrix: entry (w, r) counts n-gram id r in word w (R = ``len(vocab)``)."""
    rows: list[int] = []
    cols: list[int] = []
    for i, w in enumerate(words):
        for g in word_ngrams([w])[0]:
            rows.append(i)
            cols.append(vocab.id(g))
    idx = torch.tensor([rows, cols], dtype=torch.long)
    return torch.sparse_coo_tensor(idx, torch.ones(len(rows)), (len(words), len(vocab)), check_invariants=True).coalesce()


def project(vectors: Tensor, dim: int, norm: float) -> Tensor:
    """(W, Dt) teacher vectors → (W, dim): their first ``dim`` principal directions (all of them, zero
    padded, when dim ≥ Dt), scaled so the mean row norm is ``norm`` (the random word vectors' own, so
    the LSTM's gates see inputs of the size they would have seen)."""
    x = vectors - vectors.mean(dim=0, keepdim=True)
    k = min(dim, x.shape[1], x.shape[0])
    _, _, v = torch.linalg.svd(x, full_matrices=False)  # v (k', Dt): principal directions
    out = x @ v[:k].t()  # (W, k)
    if k < dim:
        out = torch.cat([out, out.new_zeros(out.shape[0], dim - k)], dim=1)
    return out * (norm / out.norm(dim=1).mean().clamp_min(1e-12))


@dataclass
class Fit:
    """The solver's result: rows (R, E), the iterations it took and the worst column's relative residual
    ‖b − M x‖ / ‖b‖ at the end (small: converged; else the fit stopped at ``iters``)."""

    rows: Tensor
    iters: int
    residual: float


def fit_rows(a: Tensor, targets: Tensor, l2: float = 0.1, iters: int = 200, tol: float = 1e-4) -> Fit:
    """(R, E) rows minimising ‖a · rows − targets‖² + l2‖rows‖², a (W, R) sparse, targets (W, E).

    Conjugate gradients on the normal equations M x = Aᵀ T, M = AᵀA + l2·I symmetric positive definite,
    every column at once (each its own step sizes), preconditioned by M's diagonal (Jacobi): a common
    trigram ("ing") sits in thousands of words and a rare one in two, so M's diagonal spans 10⁴ and plain
    CG would crawl. Rows of n-grams no word uses solve to 0."""
    at = a.t().coalesce()
    diag = torch.sparse.sum(at * at, dim=1).to_dense().unsqueeze(1) + l2  # (R, 1): M's diagonal

    def apply(x: Tensor) -> Tensor:  # M x, x (R, E)
        return torch.sparse.mm(at, torch.sparse.mm(a, x)) + l2 * x

    b = torch.sparse.mm(at, targets)  # (R, E)
    b_norm = b.norm(dim=0).clamp_min(1e-30)  # (E,)
    x = torch.zeros_like(b)
    r = b.clone()
    z = r / diag
    p = z.clone()
    rz = (r * z).sum(dim=0)  # (E,)
    done = 0
    while done < iters:
        done += 1
        mp = apply(p)
        alpha = rz / (p * mp).sum(dim=0).clamp_min(1e-30)
        x += p * alpha
        r -= mp * alpha
        if bool((r.norm(dim=0) <= tol * b_norm).all()):
            break
        z = r / diag
        new = (r * z).sum(dim=0)
        p = z + p * (new / rz.clamp_min(1e-30))
        rz = new
    return Fit(x, done, float((r.norm(dim=0) / b_norm).max()))


@dataclass
class WordInit:
    """What ``init_from_teacher`` did: for the log and training.json."""

    used: Tensor  # (R,) bool: the rows that were fitted
    record: dict[str, Any]


def init_from_teacher(
    embed: torch.nn.EmbeddingBag, vocab: Vocab, texts: Sequence[str],
    embed_words: Callable[[list[str]], tuple[Tensor, dict[str, Any]]], max_words: int = 50_000,
    l2: float = 0.1, min_latin: float = 0.5, log: Callable[[str], None] = print,
) -> WordInit:
    """Set ``embed``'s rows so that each frequent word of ``texts`` sums to its teacher vector (projected to
    the table's width); ``embed_words`` maps words to (W, Dt) teacher vectors and a record of how.

    ValueError when the texts are not mostly Latin-script words (under ``min_latin`` of their word
    occurrences): the teacher reads English, and a fit to a few stray Latin words would mean nothing."""
    words, latin = frequent_words(texts, max_words, split=vocab.words)
    if latin < min_latin or len(words) < 2:
        raise ValueError(f"only {latin:.0%} of the words are Latin-script ({len(words)} frequent ones): "
                         "the teacher's word vectors would say little about this text")
    with torch.no_grad():
        weight = embed.weight  # (R, E)
        a = incidence(vocab, words)  # (W, R)
        # The random table's word vectors set the scale (a word's n-gram count times the row variance).
        norm = float(torch.sparse.mm(a, weight).norm(dim=1).mean())
        vecs, rec = embed_words(words)
        targets = project(vecs.float(), weight.shape[1], norm)  # (W, E)
        fit = fit_rows(a, targets, l2=l2)
        used = torch.sparse.sum(a, dim=0).to_dense() > 0  # (R,)
        weight[used] = fit.rows[used]
        fitted = torch.sparse.mm(a, weight)
        r2 = 1.0 - float(((fitted - targets) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum())
    n_used = int(used.sum())
    log(f"word init: {len(words)} words' teacher vectors → {n_used} n-gram rows (R² {r2:.3f}, "
        f"{fit.iters} iterations, residual {fit.residual:.1e})")
    return WordInit(used, {**rec, "words": len(words), "latin_share": round(latin, 4), "rows_fitted": n_used,
                           "fit_r2": round(r2, 4), "l2": l2, "iterations": fit.iters,
                           "residual": float(f"{fit.residual:.3g}")})


def init_model_words(
    model: LSTMDSSM, vocab: Vocab, texts: Sequence[str], teacher: str,
    embed_words: Callable[[list[str]], tuple[Tensor, dict[str, Any]]], max_words: int = 50_000,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``init_from_teacher`` on the query tower's table; a separate document tower gets the same fitted rows
    (its other rows keep their own random start). Marks the config (``extra.word_init_from``), which the
    Trainer checks, and returns the record for training.json."""
    done = init_from_teacher(model.query.embed, vocab, texts, embed_words, max_words=max_words, log=log)
    if model.doc is not model.query:
        with torch.no_grad():
            model.doc.embed.weight[done.used] = model.query.embed.weight[done.used]
    model.cfg.extra["word_init_from"] = teacher
    return {"teacher": teacher, **done.record}
