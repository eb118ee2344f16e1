"""N-gram embeddings that start from the corpus's own co-occurrences (``--word-init cooc``; training only).

Where no teacher speaks the language (all-MiniLM-L6-v2 reads English; kuake_qtr is Chinese), the n-gram
table starts random and only the training pairs teach it: kuake_qtr has 4,119 training questions, and its
dev NDCG@10 stops rising by epoch 5–7 while the training loss keeps falling. The corpus itself says
more: n-grams that keep the same neighbours mean related things (感冒 "a cold" and 发烧 "a fever" sit
beside 怎么办 "what to do"). Here each n-gram row starts as its row of a truncated SVD of the positive
pointwise mutual information between n-grams and the n-grams of the words around them (Levy & Goldberg,
2014: the factorisation skip-gram approximates), computed on the training questions and the documents.
No download and no new package: NumPy for the counts, ``torch.svd_lowrank`` for the factorisation.

The math, with R the table's rows:
- C (R, R): C[i, j] = Σ over word pairs at distance d ≤ ``window`` of 1/d, i an n-gram of one word and j
  one of the other (symmetric);
- PPMI[i, j] = max(0, log C[i, j] − log c_i − log P_α(j)), c_i = Σ_j C[i, j], P_α(j) = c_j^α / Σ c^α (α = 0.75
  smooths the contexts' distribution, so rare contexts do not dominate);
- PPMI ≈ U S Vᵀ (rank E, the table's width); row i starts as U[i] √S[i], scaled to the norm of the
  random rows (the LSTM's gates then see inputs of the size they would have seen). Rows whose weighted
  co-occurrence mass c_i is under ``min_count`` (a CJK n-gram seen once or twice; a Latin trigram seen at
  all passes, as each neighbour adds its several trigrams), and rows with no positive PMI, keep their
  random start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .featurizer import Vocab
from .tower import LSTMDSSM

ALPHA = 0.75  # context distribution smoothing (Levy, Goldberg & Dagan, 2015)
COMPACT_AT = 20_000_000  # pending pair entries merged into the running sums (bounds memory on a large corpus)


def _merge(keys: list[np.ndarray], weights: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sum the weights of equal keys: (sorted unique keys, their summed weights)."""
    uniq, inv = np.unique(np.concatenate(keys), return_inverse=True)
    return uniq, np.bincount(inv, weights=np.concatenate(weights))


def cooc_matrix(vocab: Vocab, texts: Sequence[str], window: int = 2, max_words: int = 256,
                compact_at: int = COMPACT_AT) -> Tensor:
    """(R, R) sparse, coalesced: Σ 1/d over the pairs of n-grams of two words d ≤ ``window`` apart, both ways.
    Pending pairs are summed into the running totals whenever ``compact_at`` new ones have piled up."""
    if window < 1:
        raise ValueError(f"the co-occurrence window must be at least 1 word, not {window}")
    r = len(vocab)
    keys: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    fresh = 0  # entries added since the last merge
    for t in texts:
        enc = vocab.encode(t, max_words)  # word → its n-gram ids
        if len(enc) < 2:
            continue
        g = max(len(w) for w in enc)
        ids = np.full((len(enc), g), -1, dtype=np.int64)  # (n, g): each word's ids, −1 padded
        for k, w in enumerate(enc):
            ids[k, : len(w)] = w
        # Words d apart, every n-gram of one with every n-gram of the other: O(n · d · g²), so a long
        # document costs in proportion to its length, not its square.
        for d in range(1, min(window, len(enc) - 1) + 1):
            a, b = ids[:-d, :, None], ids[d:, None, :]  # (n − d, g, 1), (n − d, 1, g)
            a, b = np.broadcast_arrays(a, b)
            ok = (a >= 0) & (b >= 0)
            a, b = a[ok], b[ok]
            keys += [a * r + b, b * r + a]
            weights.append(np.full(2 * len(a), 1.0 / d))
            fresh += 2 * len(a)
        if fresh > compact_at:  # the running sums keep one entry per distinct pair
            uk, uw = _merge(keys, weights)
            keys, weights, fresh = [uk], [uw], 0
    if not keys:
        return torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (r, r),
                                       check_invariants=True).coalesce()
    uniq, vals = _merge(keys, weights)
    idx = torch.from_numpy(np.stack([uniq // r, uniq % r]))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(vals).float(), (r, r), check_invariants=True).coalesce()


def ppmi(c: Tensor) -> Tensor:
    """The positive PMI of a symmetric (R, R) sparse count matrix, with α-smoothed contexts (module doc)."""
    i, j = c.indices()
    v = c.values().double()
    row = torch.zeros(c.shape[0], dtype=torch.float64).index_add_(0, i, v)  # (R,) c_i
    ctx = row.pow(ALPHA)
    p_ctx = ctx / ctx.sum().clamp_min(1e-30)
    pmi = v.log() - row[i].log() - p_ctx[j].log()
    keep = pmi > 0
    return torch.sparse_coo_tensor(torch.stack([i[keep], j[keep]]), pmi[keep].float(), c.shape,
                                   check_invariants=True).coalesce()


def cooc_rows(vocab: Vocab, texts: Sequence[str], dim: int, window: int = 2, max_words: int = 256,
              seed: int = 0) -> tuple[Tensor, Tensor]:
    """(R, dim) unit-norm row vectors from the PPMI's truncated SVD, and (R,) the rows' counts."""
    c = cooc_matrix(vocab, texts, window, max_words)
    counts = torch.zeros(c.shape[0], dtype=torch.float64).index_add_(0, c.indices()[0], c.values().double())
    m = ppmi(c)
    k = min(dim, c.shape[0] - 1)
    gen_state = torch.random.get_rng_state()  # svd_lowrank draws a random sketch: keep the caller's stream
    torch.manual_seed(seed)
    try:
        u, s, _ = torch.svd_lowrank(m, q=k, niter=4)  # u (R, k), s (k,)
    finally:
        torch.random.set_rng_state(gen_state)
    rows = u * s.sqrt()
    if k < dim:
        rows = torch.cat([rows, rows.new_zeros(rows.shape[0], dim - k)], dim=1)
    return rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12), counts.float()


def init_model_cooc(model: LSTMDSSM, vocab: Vocab, texts: Sequence[str], window: int = 2, min_count: float = 5.0,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Set the rows of n-grams seen ``min_count`` times or more (weighted counts) to their co-occurrence
    vectors, at the random rows' mean norm; both towers when they are two. Marks the config
    (``extra.word_init_from``) and returns the record for training.json."""
    weight = model.query.embed.weight  # (R, E)
    with torch.no_grad():
        vecs, counts = cooc_rows(vocab, texts, weight.shape[1], window)
        used = (counts >= min_count) & (vecs.norm(dim=1) > 0)  # (R,): seen enough, with some positive PMI
        norm = float(weight.norm(dim=1).mean())
        towers = [model.query] if model.doc is model.query else [model.query, model.doc]
        for t in towers:
            t.embed.weight[used] = vecs[used] * norm
    n = int(used.sum())
    log(f"word init: {n} of {len(vocab)} n-gram rows from the corpus's co-occurrences "
        f"(PPMI, window {window}, rank {weight.shape[1]}, {len(texts)} texts)")
    model.cfg.extra["word_init_from"] = "cooc"
    return {"from": "cooc", "texts": len(texts), "window": window, "min_count": min_count, "rows_fitted": n}
