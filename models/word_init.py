"""Word hashing that starts from a general teacher's word meanings (``--word-init teacher``; training only).

A freshly initialised LSTM-DSSM knows nothing of what words mean: the training pairs teach it the words
they contain, and a word that only real users write ("tummy", "pee") keeps a random vector. Here the
n-gram embedding table starts where the sum of a word's n-gram embeddings (its word vector, the
EmbeddingBag's output) is the teacher's vector of that word alone, for the corpus's most frequent words;
synonyms then start as neighbours, and n-grams shared by related words carry that meaning to words never
fitted. Training moves the table as before; the served model is the LSTM-DSSM alone.

The fit is ridge regression: with A (W, R) counting the n-gram ids of each of W words among the table's R
rows and T (W, E) the words' targets, E* = argmin ‖A E − T‖² + λ‖E‖², solved by conjugate gradients
on (AᵀA + λI) E = AᵀT (one sparse product a step; R ~60k rows, E 256 columns at once). Rows no fitted
word uses keep their random initialisation.
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

_LATIN_WORD = re.compile(r"[a-z][a-z0-9]*")  # words the English teacher can say something about


def frequent_words(texts: Iterable[str], max_words: int, min_count: int = 2) -> list[str]:
    """The ``max_words`` most frequent words of ``texts`` (as the featurizer splits them) that start with a
    Latin letter, seen at least ``min_count`` times; ties broken by the word, so the list is deterministic."""
    counts: Counter[str] = Counter()
    for t in texts:
        counts.update(w for w in split_words(t) if _LATIN_WORD.fullmatch(w))
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return ranked[:max_words]


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


def fit_rows(a: Tensor, targets: Tensor, l2: float = 0.1, iters: int = 100, tol: float = 1e-4) -> Tensor:
    """(R, E) rows minimising ‖a · rows − targets‖² + l2‖rows‖², a (W, R) sparse, targets (W, E).

    Conjugate gradients on the normal equations, every column at once (each column its own step sizes):
    the matrix AᵀA + l2·I is symmetric positive definite, so it converges; rows of n-grams no word uses
    solve to 0."""
    at = a.t().coalesce()

    def apply(x: Tensor) -> Tensor:  # (AᵀA + l2 I) x, x (R, E)
        return torch.sparse.mm(at, torch.sparse.mm(a, x)) + l2 * x

    b = torch.sparse.mm(at, targets)  # (R, E)
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = (r * r).sum(dim=0)  # (E,)
    stop = (tol * tol) * rs.clamp_min(1e-30)
    for _ in range(iters):
        ap = apply(p)
        alpha = rs / (p * ap).sum(dim=0).clamp_min(1e-30)
        x += p * alpha
        r -= ap * alpha
        new = (r * r).sum(dim=0)
        if bool((new <= stop).all()):
            break
        p = r + p * (new / rs.clamp_min(1e-30))
        rs = new
    return x


@dataclass
class WordInit:
    """What ``init_from_teacher`` did, for training.json."""

    words: int
    rows_fitted: int
    fit_r2: float  # share of the targets' variance that the fitted n-gram sums explain
    record: dict[str, Any]


def init_from_teacher(
    embed: torch.nn.EmbeddingBag, vocab: Vocab, texts: Sequence[str],
    embed_words: Callable[[list[str]], tuple[Tensor, dict[str, Any]]], max_words: int = 50_000,
    l2: float = 0.1, log: Callable[[str], None] = print,
) -> WordInit:
    """Set ``embed``'s rows so that each frequent word of ``texts`` sums to its teacher vector (projected to
    the table's width); ``embed_words`` maps words to (W, Dt) teacher vectors and a record of how."""
    words = frequent_words(texts, max_words)
    if len(words) < 2:
        raise ValueError("too few Latin-script words to fit the n-gram table to the teacher's word vectors")
    with torch.no_grad():
        weight = embed.weight  # (R, E)
        a = incidence(vocab, words)  # (W, R)
        # The random table's word vectors set the scale (a word's n-gram count times the row variance).
        norm = float(torch.sparse.mm(a, weight).norm(dim=1).mean())
        vecs, rec = embed_words(words)
        targets = project(vecs.float(), weight.shape[1], norm)  # (W, E)
        rows = fit_rows(a, targets, l2=l2)
        used = torch.sparse.sum(a, dim=0).to_dense() > 0  # (R,)
        weight[used] = rows[used]
        fitted = torch.sparse.mm(a, weight)
        r2 = 1.0 - float(((fitted - targets) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum())
    log(f"word init: {len(words)} words' teacher vectors → {int(used.sum())} n-gram rows (R² {r2:.3f})")
    return WordInit(len(words), int(used.sum()), round(r2, 4), {**rec, "words": len(words),
                                                                  "rows_fitted": int(used.sum()),
                                                                  "fit_r2": round(r2, 4), "l2": l2})
