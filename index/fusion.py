"""Hybrid search: fusing the dense and the BM25 ranking of one query, and choosing how on dev data.

The settings live in the manifest's ``fusion`` entry, which :class:`index.SearchIndex` exposes as
``.fusion`` and ``search_hybrid`` applies (the service and ``scripts/evaluate.py`` alike):

- ``{"method": "rrf", "k": 10}``: reciprocal rank fusion, Σ 1 / (k + rank).
- ``{"method": "weighted", "weight": 0.6}``: w·minmax(cosine) + (1 − w)·BM25/max(BM25), w on the dense side.
- ``{"method": "adaptive", "base": "weighted" | "rrf", "k": 10, "bias": b, "coef": {f: θ_f}, "mean": {f: μ_f},
  "std": {f: σ_f}}``: a **query-adaptive** weight. Per query, w(q) = clip(b + Σ_f θ_f (x_f − μ_f) / σ_f, 0, 1)
  from the query's own candidates (no judgements needed, so it applies to any corpus), then the base
  fusion with that weight (RRF with a weight: 2w / (k + r_dense) + 2(1 − w) / (k + r_bm25); w = ½ is RRF).
  With ``"zclip": c`` (a model's own fusion) each standardised feature is first clipped to [−c, c].

Why adaptive: a weight chosen on in-distribution dev (medquad: 0.9 on dense) is the worst choice once
queries drift from the training form, where the dense side can be far below BM25. The features say how
much this query looks like what the model knows (:data:`FEATURES`).

A model's own adaptive fusion clips its features (:data:`ZCLIP`) and carries ``"familiar"``
(index/familiar.py): a sketch of the terms its training text holds often. With it, the weight on the
dense side (weighted or adaptive) is scaled by the share of the query's terms in the sketch, since the
dense side knows nothing of a word the model barely saw.

Choosing (:func:`choose_fusion`): every constant setting of the grid, and the adaptive weight fitted on
the dev queries (coordinate search from the best constant weight, an L2 pull to it), are compared by
5-fold cross-validation over the dev queries; the adaptive one is kept only when it generalises
better. A model carries the fusion fitted on its training data's dev split and on probe queries of its
corpus (``fusion.json``, :func:`choose_model_fusion`); an index build refines it on the corpus's own dev
split where one exists, else keeps the model's.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

import numpy as np

from models.data import Qrels

from .evaluation import evaluate_run, ndcg_at_k
from .familiar import check_sketch, familiar_share

K = TypeVar("K", bound=Hashable)

DEPTH = 100  # candidates taken from each side
DEFAULT_FUSION: dict[str, Any] = {"method": "rrf", "k": 10, "depth": DEPTH, "chosen_on": "default"}
RRF_GRID = (1, 5, 10, 20, 60)
WEIGHT_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
W_STEPS = np.linspace(0.0, 1.0, 21)  # the weights an adaptive fit is scored at (interpolated between)
# What a query's candidates say about it (computed by query_features):
#   top1     the dense top-1 cosine (how close the nearest document is to the query in the model's space)
#   margin   top-1 minus the 10th cosine (a clear winner, or a flat list of look-alikes)
#   overlap  share of the dense top 10 that BM25's top 10 also has (the two sides agree)
#   qlen     log(1 + number of lexical terms): long, multi-question messages are unlike training queries
#   known    share of the query's terms that occur in the corpus (what BM25 can match at all)
FEATURES = ("top1", "margin", "overlap", "qlen", "known")
# The features a model's own fusion may use. Its fit contrasts dev queries with probe queries
# (index/probes.py), and a probe's length (one 6-40 word sentence) and its known share (its words are the
# corpus's own: always 1) are set by how probes are made, not by how unfamiliar the query is: with them the
# fit learns "long = probe = BM25", so a short query of an unseen domain got the dense side (medquad model
# on the stdlib demo's dev queries: 0.421 with them, 0.448 without, BM25 0.428; mediqa_qa dev 0.504 →
# 0.541). The three left describe the candidates, whatever made the query.
PROBE_FEATURES = ("top1", "margin", "overlap")
CV_FOLDS = 5
# A model's own fit (choose_model_fusion): the shares of the mixture its dev split may take, and how far
# below the better side alone the fit may leave that dev split (three quarters of the tolerance of
# "hybrid never hurts", 0.01; below it the fit is not used). Among the shares that keep dev, the one that
# balances the two populations' shortfalls (below their better side alone), dev's counted against
# HYBRID_TOLERANCE and the probes' against PROBE_TOLERANCE: the probes stand in for drifted queries, and
# as dev's share grows past 0.7 their NDCG falls 4 to 9 times as fast as dev's rises. Chosen on dev
# (runs/x/r9/share_table.py: three medquad models, each share's hybrid on the dev splits of medquad,
# mediqa_qa and the stdlib docs): the balanced share keeps every dev row of all three (max pooling: 0.95,
# medquad +0.000, stdlib −0.003 against their better side; last state: 0.9, −0.005, −0.003; 128-d
# projection: 0.8, −0.005, +0.000), as does any PROBE_TOLERANCE from 0.08 to 0.12. The rule before it,
# the first share keeping dev within DEV_SLACK, left max pooling's medquad dev 0.0074 under dense (share
# 0.7), and its test 0.012 under (a miss); with a smaller slack it took shares that left the stdlib docs
# 0.010 and 0.030 under BM25 for the other two models.
DEV_SHARES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
DEV_SLACK = 0.0075
HYBRID_TOLERANCE = 0.01
PROBE_TOLERANCE = 0.1
CV_MARGIN = 0.002  # adaptive must beat the best constant by this much (cross-validated NDCG@10)
L2 = 0.002  # pull of the coefficients towards 0 (= the constant weight), per unit of squared coefficient
# A model's own adaptive weight (fitted on dev and probes), as applied, clips each standardised feature
# to ±ZCLIP, so no one feature moves the weight by more than |θ_f|·ZCLIP from the bias. Why: the fit
# learns its slopes from the probes, whose features lie further out than a real drifted query's; unclipped,
# the weight swung between 0 and 1 on an unseen domain and put the dense side on the wrong queries. The
# fit and its share stay unclipped (scored as applied, the balance chose steeper slopes and lost on dev);
# the clip is dropped where it would leave the model's own dev split more than DEV_SLACK under its better
# side. Chosen on dev: README, "A twenty-first round" (runs/x/r22/rules3.py).
ZCLIP = 1.0


@dataclass
class Candidates:
    """One query's candidates: rows in dense order, rows in BM25 order (score > 0 only), their BM25
    scores, the exact cosine of every candidate of either list, and the query's lexical statistics
    (number of terms, share known to the corpus, the terms themselves)."""

    dense: list[int]
    lexical: list[int]
    bm25: dict[int, float]
    cos: dict[int, float]
    qlen: int = 0
    known: float = 0.0
    terms: tuple[str, ...] = ()


def rrf(rankings: Sequence[Sequence[K]], k: float = 60.0, weights: Sequence[float] | None = None) -> list[tuple[K, float]]:
    """Reciprocal rank fusion: score(d) = Σ_r w_r / (k + rank_r(d)), rank from 1; best first.

    Works on any hashable keys (corpus ids, index rows). Ties break by first appearance (first ranking
    first), so the result is deterministic.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[K, float] = {}
    for w, ranking in zip(weights, rankings, strict=True):
        for r, d in enumerate(ranking, 1):
            scores[d] = scores.get(d, 0.0) + w / (k + r)
    return sorted(scores.items(), key=lambda kv: -kv[1])


# ---- checking settings ---------------------------------------------------------------------------------

def _num(v: Any) -> TypeGuard[float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_fusion(settings: Any) -> str | None:
    """Why ``settings`` cannot be applied, or None when it can."""
    if not isinstance(settings, dict):
        return "fusion settings must be an object"
    if "familiar" in settings and (why := check_sketch(settings["familiar"])):
        return why
    depth = settings.get("depth", DEPTH)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        return f"depth must be a positive integer, got {depth!r}"
    method = settings.get("method")
    if method == "rrf":
        k = settings.get("k")
        return None if _num(k) and float(k) > 0 else f"rrf needs k > 0, got {k!r}"
    if method == "weighted":
        w = settings.get("weight")
        return None if _num(w) and 0 <= float(w) <= 1 else f"weighted fusion needs 0 ≤ weight ≤ 1, got {w!r}"
    if method == "adaptive":
        if settings.get("base") not in ("weighted", "rrf"):
            return f"adaptive fusion needs base weighted or rrf, got {settings.get('base')!r}"
        # fuse reads k for either base (the RRF terms are computed in both): check it whenever present.
        if (settings.get("base") == "rrf" or "k" in settings) and not (_num(settings.get("k")) and settings["k"] > 0):
            return f"adaptive fusion needs k > 0, got {settings.get('k')!r}"
        if not _num(settings.get("bias")):
            return f"adaptive fusion needs a finite bias, got {settings.get('bias')!r}"
        for part in ("coef", "mean", "std"):
            d = settings.get(part)
            if not isinstance(d, dict) or set(d) - set(FEATURES) or not all(_num(v) for v in d.values()):
                return f"adaptive fusion: {part} must map features {FEATURES} to finite numbers"
        if set(settings["coef"]) - set(settings["mean"]) or set(settings["coef"]) - set(settings["std"]):
            return "adaptive fusion: every coef needs a mean and a std"
        if any(settings["std"][f] <= 0 for f in settings["coef"]):
            return "adaptive fusion: std must be > 0"
        if "zclip" in settings and not (_num(settings["zclip"]) and settings["zclip"] > 0):
            return f"adaptive fusion needs zclip > 0, got {settings['zclip']!r}"
        return None
    return f"unknown fusion method {method!r} (rrf, weighted or adaptive)"


# ---- the math of one query ---------------------------------------------------------------------------

def query_features(c: Candidates) -> dict[str, float]:
    """The adaptive fusion's inputs for one query (see :data:`FEATURES`)."""
    top = [c.cos[r] for r in c.dense[:10]]
    top1 = top[0] if top else 0.0
    overlap = len(set(c.dense[:10]) & set(c.lexical[:10])) / 10.0
    return {"top1": top1, "margin": top1 - top[-1] if top else 0.0, "overlap": overlap,
            "qlen": math.log1p(c.qlen), "known": c.known}


def adaptive_weight(settings: dict[str, Any], feats: dict[str, float]) -> float:
    """w(q) = clip(bias + Σ θ_f · clip((x_f − μ_f) / σ_f, ±zclip), 0, 1): the dense side's weight for this
    query (the features unclipped without ``zclip``)."""
    c = float(settings.get("zclip", math.inf))
    z = settings["bias"] + sum(th * min(c, max(-c, (feats[f] - settings["mean"][f]) / settings["std"][f]))
                               for f, th in settings["coef"].items())
    return float(min(1.0, max(0.0, z)))


@dataclass
class _Sides:
    """One query's candidates as aligned arrays (union in dense-then-BM25 order, for first-appearance ties)."""

    rows: list[int]
    dn: np.ndarray  # (m,) cosine min-max normalised over the candidates
    ln: np.ndarray  # (m,) BM25 / max BM25 (0 where BM25 did not return the row)
    inv_d: np.ndarray  # (m,) 1 / (k + dense rank), 0 where absent (k filled in by _rrf_parts)
    inv_l: np.ndarray  # (m,) 1 / (k + BM25 rank), 0 where absent


def _sides(c: Candidates, k: float) -> _Sides:
    rows = list(dict.fromkeys(c.dense + c.lexical))
    cos = np.array([c.cos[r] for r in rows], dtype=np.float64)
    lo, hi = (cos.min(), cos.max()) if rows else (0.0, 0.0)
    dn = (cos - lo) / (hi - lo) if hi > lo else np.ones_like(cos)
    bmax = max(c.bm25.values(), default=0.0)
    ln = np.array([c.bm25.get(r, 0.0) / bmax if bmax > 0 else 0.0 for r in rows])
    rd = {r: i for i, r in enumerate(c.dense, 1)}
    rl = {r: i for i, r in enumerate(c.lexical, 1)}
    inv_d = np.array([1.0 / (k + rd[r]) if r in rd else 0.0 for r in rows])
    inv_l = np.array([1.0 / (k + rl[r]) if r in rl else 0.0 for r in rows])
    return _Sides(rows, dn, ln, inv_d, inv_l)


def _scores(s: _Sides, base: str, w: np.ndarray) -> np.ndarray:
    """(len(w), m) fused scores of every candidate at each dense weight in ``w``."""
    w = w[:, None]
    if base == "weighted":
        return w * s.dn + (1 - w) * s.ln
    return 2 * w * s.inv_d + 2 * (1 - w) * s.inv_l


def fuse(c: Candidates, settings: dict[str, Any]) -> list[tuple[int, float]]:
    """(row, fused score) best first; ties keep first appearance (dense list first)."""
    method = settings["method"]
    if method == "rrf":
        return rrf([c.dense, c.lexical], k=float(settings["k"]))
    if not c.dense and not c.lexical:
        return []
    if method == "weighted":
        base, w, k = "weighted", float(settings["weight"]), 60.0
    else:
        base, w, k = settings["base"], adaptive_weight(settings, query_features(c)), float(settings.get("k", 60))
    if "familiar" in settings:
        w *= familiar_share(settings["familiar"], c.terms)
    s = _sides(c, k)
    score = _scores(s, base, np.array([w]))[0]
    order = np.argsort(-score, kind="stable")  # stable: equal scores keep first appearance
    return [(s.rows[i], float(score[i])) for i in order]


# ---- choosing on dev ------------------------------------------------------------------------------------

def grid() -> list[dict[str, Any]]:
    return [{"method": "rrf", "k": k} for k in RRF_GRID] + [{"method": "weighted", "weight": w} for w in WEIGHT_GRID]


def _gains(rows: list[int], rel: dict[str, int], doc_ids: Sequence[str]) -> tuple[np.ndarray, float]:
    g = np.array([2.0 ** rel.get(doc_ids[r], 0) - 1 for r in rows])
    ideal = sorted(rel.values(), reverse=True)[:10]
    idcg = sum((2.0**x - 1) / math.log2(i + 2) for i, x in enumerate(ideal))
    return g, idcg


_DISCOUNT = 1.0 / np.log2(np.arange(2, 12))  # positions 1..10


def ndcg_table(cands: Sequence[Candidates], rels: Sequence[dict[str, int]], doc_ids: Sequence[str],
               base: str, k: float) -> np.ndarray:
    """(n_queries, len(W_STEPS)) NDCG@10 of each dev query fused with each weight in :data:`W_STEPS`."""
    return np.stack([_ndcg_at(c, rel, doc_ids, base, k, W_STEPS) for c, rel in zip(cands, rels, strict=True)]
                    ) if cands else np.zeros((0, len(W_STEPS)))


def ndcg_at_weights(cands: Sequence[Candidates], rels: Sequence[dict[str, int]], doc_ids: Sequence[str],
                    base: str, k: float, w: np.ndarray) -> np.ndarray:
    """(n,) NDCG@10 of each query fused at its own weight ``w`` (n,): exact, where ``_value`` interpolates
    the table (optimistic for a weight between two steps where the ranking changes)."""
    return np.array([_ndcg_at(c, rel, doc_ids, base, k, np.array([wi]))[0]
                     for c, rel, wi in zip(cands, rels, w, strict=True)])


def _ndcg_at(c: Candidates, rel: dict[str, int], doc_ids: Sequence[str], base: str, k: float,
             weights: np.ndarray) -> np.ndarray:
    """(len(weights),) NDCG@10 of one query fused at each of ``weights``."""
    out = np.zeros(len(weights))
    if not c.dense and not c.lexical:
        return out
    s = _sides(c, k)
    g, idcg = _gains(s.rows, rel, doc_ids)
    if idcg <= 0:
        return out
    order = np.argsort(-_scores(s, base, weights), axis=1, kind="stable")[:, :10]  # (len(weights), ≤10)
    return (g[order] * _DISCOUNT[: order.shape[1]]).sum(axis=1) / idcg


def _value(table: np.ndarray, w: np.ndarray) -> np.ndarray:  # (n,)
    """Each query's NDCG at its own weight w (n,), linear between the scored weights."""
    pos = np.clip(w, 0.0, 1.0) * (len(W_STEPS) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(W_STEPS) - 1)
    t = pos - lo
    idx = np.arange(len(w))
    return (1 - t) * table[idx, lo] + t * table[idx, hi]


def fit_adaptive(table: np.ndarray, z: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(bias, coefficients) maximising mean NDCG − L2·|θ|² over queries, w = clip(bias + z·θ, 0, 1).

    ``table`` (n, len(W_STEPS)) from :func:`ndcg_table`; ``z`` (n, F) standardised features; ``weights``
    (n,) per query (default equal). Starts at the best constant weight (θ = 0), so the fit is never worse
    than it on these queries; coordinate search with shrinking steps (the objective is piecewise linear:
    no gradient to follow).
    """
    n, f = z.shape
    p = np.full(n, 1.0 / max(n, 1)) if weights is None else weights / weights.sum()
    bias = float(W_STEPS[int(np.argmax(p @ table))])
    theta = np.zeros(f)

    def objective(b: float, th: np.ndarray) -> float:
        return float(p @ _value(table, b + z @ th) - L2 * float(th @ th))

    best = objective(bias, theta)
    for step in (0.2, 0.1, 0.05, 0.02, 0.01):
        improved = True
        while improved:
            improved = False
            for j in range(f + 1):
                for sign in (1.0, -1.0):
                    b, th = bias, theta.copy()
                    if j == f:
                        b += sign * step
                    else:
                        th[j] += sign * step
                    v = objective(b, th)
                    if v > best + 1e-9:
                        bias, theta, best, improved = b, th, v, True
    return bias, theta


def _folds(qids: Sequence[str]) -> np.ndarray:
    """A fixed fold per query id (crc32), so a rerun cross-validates the same way."""
    return np.array([zlib.crc32(q.encode()) % CV_FOLDS for q in qids])


def _cv(table: np.ndarray, z: np.ndarray, folds: np.ndarray, adaptive: bool,
        weights: np.ndarray | None = None) -> float:
    """Cross-validated (weighted) mean NDCG@10: fit on the other folds, score the held-out one. Not
    adaptive: the column (a constant setting) best on the other folds."""
    p = np.ones(len(table)) if weights is None else weights
    total, scored = 0.0, 0.0
    for f in range(CV_FOLDS):
        test, train = folds == f, folds != f
        if not test.any() or not train.any():
            continue
        if adaptive:
            b, th = fit_adaptive(table[train], z[train], p[train])
            total += p[test] @ _value(table[test], b + z[test] @ th)
        else:
            total += p[test] @ table[test, int(np.argmax(p[train] @ table[train]))]
        scored += float(p[test].sum())
    # Only the queries actually held out count (a fold with nothing to train on is skipped); with none
    # at all (every query in one fold) there is no held-out figure: −1, below any NDCG, so nothing is
    # adopted on it and any prior is preferred.
    return float(total / scored) if scored > 0 else -1.0


def _standardise(raw: np.ndarray, weights: np.ndarray | None = None, names: Sequence[str] = FEATURES
                 ) -> tuple[np.ndarray, list[str], dict[str, float], dict[str, float]]:
    """(z, features kept, mean, std): (weighted) standardisation of the ``names`` columns of ``raw``
    (n, len(FEATURES)); a feature constant here says nothing."""
    assert set(names) <= set(FEATURES), f"unknown features {set(names) - set(FEATURES)}"
    p = np.full(len(raw), 1.0 / max(len(raw), 1)) if weights is None else weights / weights.sum()
    mean = p @ raw
    std = np.sqrt(p @ (raw - mean) ** 2)
    usable = (std > 1e-9) & np.array([f in names for f in FEATURES])
    feats = [f for f, u in zip(FEATURES, usable, strict=True) if u]
    z = (raw[:, usable] - mean[usable]) / std[usable]
    return (z, feats, {f: float(m) for f, m in zip(feats, mean[usable], strict=True)},
            {f: float(s) for f, s in zip(feats, std[usable], strict=True)})


def _raw_features(candidates: Sequence[Candidates]) -> np.ndarray:
    return np.array([[query_features(c)[f] for f in FEATURES] for c in candidates]).reshape(len(candidates), len(FEATURES))


@dataclass(eq=False)
class ShareFit:
    """The adaptive weight fitted with dev taking ``share`` of the mixture, and what it gives each population."""

    share: float
    weights: np.ndarray  # (n_dev + n_probes,) each query's weight in the fit
    z: np.ndarray  # (n_dev + n_probes, F) standardised features
    feats: list[str]
    mean: dict[str, float]
    std: dict[str, float]
    bias: float
    coef: np.ndarray  # (F,)
    dev_value: float  # dev's exact NDCG@10 at the fitted weights
    probe_value: float  # the probes' NDCG@10 by the table
    kept: bool = False
    shortfall: float = 0.0


def _fit_share(share: float, table: np.ndarray, raw: np.ndarray, n: int, dev: Sequence[Candidates],
               dev_rels: Sequence[dict[str, int]], doc_ids: Sequence[str]) -> ShareFit:
    m = len(table) - n
    weights = np.concatenate([np.full(n, share / n), np.full(m, (1 - share) / m)])
    z, feats, mean, std = _standardise(raw, weights, PROBE_FEATURES)
    b, th = fit_adaptive(table, z, weights)
    w = np.clip(b + z @ th, 0, 1)
    # Dev's exact NDCG at these weights: the table's interpolation is optimistic for weights between its
    # steps, and a fit can lean on that (a synthetic dev split: 0.994 by the table, 0.815 fused). (The
    # fit's objective, the cross-validation and the probes' figure stay on the table: smooth in the
    # weights, which the fit needs; the probes' figure is compared with the table's own ends, its two
    # sides alone, so its interpolation can only understate a shortfall slightly between steps.)
    dev_value = float(ndcg_at_weights(dev, dev_rels, doc_ids, "weighted", 60.0, w[:n]).mean())
    return ShareFit(share, weights, z, list(feats), mean, std, b, th, dev_value, float(_value(table, w)[n:].mean()))


def balanced_share(fits: Sequence[ShareFit], dev_best: float, probe_best: float) -> ShareFit:
    """The fit to keep, given each share's fit and each population's better side alone: among the fits
    that keep dev within :data:`DEV_SLACK` of its best, the one whose larger shortfall (dev's against
    :data:`HYBRID_TOLERANCE`, the probes' against :data:`PROBE_TOLERANCE`) is smallest, the first of
    equals; the last fit when none keeps dev. Sets each fit's ``kept`` and ``shortfall``."""
    for f in fits:
        f.kept = f.dev_value >= dev_best - DEV_SLACK
        f.shortfall = max(max(0.0, dev_best - f.dev_value) / HYBRID_TOLERANCE,
                          max(0.0, probe_best - f.probe_value) / PROBE_TOLERANCE)
    return min((f for f in fits if f.kept), key=lambda f: f.shortfall, default=fits[-1])


def choose_model_fusion(
    dev: Sequence[Candidates], dev_qids: Sequence[str], qrels: Qrels,
    probes: Sequence[Candidates], probe_rels: Sequence[dict[str, int]], doc_ids: Sequence[str],
    depth: int = DEPTH, familiar: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fusion a model carries, for corpora that have no judgements of their own.

    Fitted on two populations: the training data's dev queries (the form the model was
    trained on, where the dense side is strong) and *probe* queries, sentences of the corpus's own
    documents (index/probes.py: text unlike the training questions, where BM25 is strong). Their
    features differ the way real drifted queries differ (measured: lower top-1 cosine, margin and
    overlap), so the weight learns to fall back on BM25 when a query is unlike what the model knows;
    on dev alone there is nothing to learn that from. Only :data:`PROBE_FEATURES` are used: the others
    tell probes from dev queries by how probes are made. The mixture's share of dev (:data:`DEV_SHARES`)
    is the one that balances the two populations' shortfalls among those that keep the model's own dev
    split within :data:`DEV_SLACK` of the better side alone (:func:`balanced_share`; with equal shares the
    probes pulled a strong model's weight down in its own distribution, and the first share keeping dev
    could leave dev at the very edge of its slack). Falls back to :func:`choose_fusion` on the dev
    queries when the adaptive weight does not beat a constant one (cross-validated on the mixture) or
    cannot keep dev. The adaptive weight of the mixture clips its features when applied (:data:`ZCLIP`),
    unless that leaves dev more than :data:`DEV_SLACK` under its better side. ``familiar``: the sketch of
    the training text's terms (index/familiar.py), carried by a weighted or adaptive result. The dev figure
    is then measured as applied; ``dev_ndcg@10_fit`` keeps the fit's own.
    """
    fusion = _model_fit(dev, dev_qids, qrels, probes, probe_rels, doc_ids, depth)
    scaled = {**fusion, **({"familiar": familiar} if familiar is not None and fusion["method"] != "rrf" else {})}

    def dev_ndcg(settings: dict[str, Any]) -> float:
        return round(float(np.mean([ndcg_at_k([doc_ids[r] for r, _ in fuse(c, settings)[:10]], qrels[q], 10)
                                    for q, c in zip(dev_qids, dev, strict=True)])), 5)

    applied, measured = scaled, None
    if fusion.get("chosen_on") == "dev+probes":  # the dev-only fallback learnt no slope from probes
        clipped = {**scaled, "zclip": ZCLIP}
        value = dev_ndcg(clipped)
        kept = value >= max(fusion["dev_dense_ndcg@10"], fusion["dev_bm25_ndcg@10"]) - DEV_SLACK
        fusion["model_fit"]["zclip_kept"] = kept
        if kept:
            applied, measured = clipped, value
    if applied == fusion:
        return fusion
    return {**applied, "dev_ndcg@10": dev_ndcg(applied) if measured is None else measured,
            "dev_ndcg@10_fit": fusion["dev_ndcg@10"]}


def _model_fit(
    dev: Sequence[Candidates], dev_qids: Sequence[str], qrels: Qrels,
    probes: Sequence[Candidates], probe_rels: Sequence[dict[str, int]], doc_ids: Sequence[str], depth: int,
) -> dict[str, Any]:
    """:func:`choose_model_fusion` before the familiar terms."""
    # Also without probes (or when the mixture's fit is not adopted) a model's fusion serves other corpora:
    # the same three features, so no length or known-share learnt on one corpus steers another.
    on_dev = choose_fusion(dev, dev_qids, qrels, doc_ids, depth, features=PROBE_FEATURES)
    if not probes:
        return on_dev
    cands = list(dev) + list(probes)
    rels = [qrels[q] for q in dev_qids] + list(probe_rels)
    raw = _raw_features(cands)
    n = len(dev)
    dev_best = max(on_dev["dev_dense_ndcg@10"], on_dev["dev_bm25_ndcg@10"])
    folds = np.concatenate([_folds(dev_qids), _folds([f"probe:{i}" for i in range(len(probes))])])
    # On the weighted base only: at the share that keeps dev (below), the RRF base did worse on the real
    # drifted dev sets (medquad model: stdlib dev 0.440 vs 0.456, mediqa_qa dev 0.529 vs 0.558), and the
    # probes, which would pick between the two, preferred RRF (probe NDCG@10 0.738 vs 0.701).
    table = ndcg_table(cands, rels, doc_ids, "weighted", 60.0)
    # The weighted table's ends are the two sides alone (w = 1: dense, w = 0: BM25); its last rows the probes.
    probe_dense, probe_bm25 = float(table[n:, -1].mean()), float(table[n:, 0].mean())
    probe_best = max(probe_dense, probe_bm25)
    fits = [_fit_share(share, table, raw, n, cands[:n], rels[:n], doc_ids) for share in DEV_SHARES]
    fit = balanced_share(fits, dev_best, probe_best)
    cv_const, cv_adapt = _cv(table, fit.z, folds, False, fit.weights), _cv(table, fit.z, folds, True, fit.weights)
    best: dict[str, Any] = {
        "method": "adaptive", "base": "weighted", "bias": round(fit.bias, 4),
        "coef": {f: round(float(t), 4) for f, t in zip(fit.feats, fit.coef, strict=True)}, "mean": fit.mean, "std": fit.std,
        "dev_share": fit.share, "dev_floor_met": fit.kept, "shortfall": round(fit.shortfall, 4),
        "cv_ndcg@10": round(cv_adapt, 5), "cv_constant_ndcg@10": round(cv_const, 5),
        "dev_ndcg@10": round(fit.dev_value, 5), "probe_ndcg@10": round(fit.probe_value, 5)}
    report = {"probes": len(probes), "probe_dense_ndcg@10": round(probe_dense, 5), "probe_bm25_ndcg@10": round(probe_bm25, 5)}
    if not best["dev_floor_met"] or best["cv_ndcg@10"] <= best["cv_constant_ndcg@10"] + CV_MARGIN:
        return {**on_dev, "model_fit": {**report, "adaptive": best, "adaptive_adopted": False}}
    settings = {k: v for k, v in best.items() if not k.endswith("ndcg@10") and k not in ("dev_share", "dev_floor_met", "shortfall")}
    return {**settings, "depth": depth, "chosen_on": "dev+probes", "dev_queries": len(dev_qids),
            "dev_ndcg@10": best["dev_ndcg@10"], "dev_dense_ndcg@10": on_dev["dev_dense_ndcg@10"],
            "dev_bm25_ndcg@10": on_dev["dev_bm25_ndcg@10"], "model_fit": {**report, "adaptive": best, "adaptive_adopted": True},
            "dev_only": {k: v for k, v in on_dev.items() if k not in ("grid", "adaptive")}}


def choose_fusion(
    candidates: Sequence[Candidates], qids: Sequence[str], qrels: Qrels, doc_ids: Sequence[str],
    depth: int = DEPTH, prior: dict[str, Any] | None = None, features: Sequence[str] = FEATURES,
) -> dict[str, Any]:
    """Choose the fusion on dev queries (see the module docstring); ``prior`` is the model's own fusion;
    ``features``: what an adaptive weight may use (all of :data:`FEATURES` for a corpus's own dev queries).

    ``doc_ids[row]`` is the corpus id of a row. The returned dict records the whole grid, the dense and
    BM25 figures alone, and the cross-validated comparison, so the choice can be checked later.
    """

    def ndcg(run: dict[str, list[str]]) -> float:
        return evaluate_run(run, qrels)["ndcg@10"]

    def per_query(s: dict[str, Any]) -> np.ndarray:
        return np.array([ndcg_at_k([doc_ids[r] for r, _ in fuse(c, s)[:10]], qrels[q], 10) for q, c in pairs])

    pairs = list(zip(qids, candidates, strict=True))
    folds = _folds(qids)
    tried: list[dict[str, Any]] = []
    columns = []
    for s in grid():
        col = per_query(s)
        columns.append(col)
        tried.append({**s, "ndcg@10": round(float(col.mean()), 5)})
    best = max(tried, key=lambda t: t["ndcg@10"])  # max keeps the first of equal values
    cv_grid = _cv(np.stack(columns, axis=1), np.zeros((len(qids), 0)), folds, False)
    dense = ndcg({q: [doc_ids[r] for r in c.dense] for q, c in pairs})
    lexical = ndcg({q: [doc_ids[r] for r in c.lexical] for q, c in pairs})
    chosen: dict[str, Any] = {k: v for k, v in best.items() if k != "ndcg@10"}
    chosen_ndcg, chosen_cv = best["ndcg@10"], cv_grid

    # The adaptive weight, on each base; the RRF base takes the best constant RRF k.
    rels = [qrels[q] for q in qids]
    z, feats, mean, std = _standardise(_raw_features(candidates), names=features)
    rrf_k = max((t for t in tried if t["method"] == "rrf"), key=lambda t: t["ndcg@10"])["k"]
    adaptive_report: list[dict[str, Any]] = []
    for base, k in (("weighted", 60.0), ("rrf", float(rrf_k))):
        table = ndcg_table(candidates, rels, doc_ids, base, k)
        cv_const, cv_adapt = _cv(table, z, folds, False), _cv(table, z, folds, True)
        b, th = fit_adaptive(table, z)
        settings = {"method": "adaptive", "base": base, **({"k": k} if base == "rrf" else {}),
                    "bias": round(b, 4), "coef": {f: round(float(t), 4) for f, t in zip(feats, th, strict=True)},
                    "mean": mean, "std": std}
        fitted = ndcg({q: [doc_ids[r] for r, _ in fuse(c, settings)[:depth]] for q, c in pairs})
        adaptive_report.append({**settings, "dev_ndcg@10": round(fitted, 5), "cv_ndcg@10": round(cv_adapt, 5),
                                "cv_constant_ndcg@10": round(cv_const, 5)})
    # Adopted only when it generalises better than choosing among the constant settings (both
    # cross-validated over the same folds): with a few dozen dev queries a fit can learn noise.
    best_adaptive = max(adaptive_report, key=lambda a: a["cv_ndcg@10"])
    adopted = bool(best_adaptive["cv_ndcg@10"] > cv_grid + CV_MARGIN)
    if adopted:
        chosen = {k: v for k, v in best_adaptive.items() if not k.endswith("ndcg@10")}
        chosen_ndcg, chosen_cv = best_adaptive["dev_ndcg@10"], best_adaptive["cv_ndcg@10"]
    prior_ndcg: float | None = None
    kept_prior = False
    if prior is not None and check_fusion(prior) is None:
        # The model's own fusion was fitted on other queries, so its score here is already a held-out
        # figure: compare it with the cross-validated figure of what these dev queries would choose.
        prior_ndcg = round(float(per_query(prior).mean()), 5)
        if prior_ndcg >= chosen_cv:
            chosen, chosen_ndcg, kept_prior = settings_of(prior), prior_ndcg, True
            chosen.pop("depth", None)
            adopted = False  # what serves is the model's fusion, not a fit on these queries
    return {
        **chosen, "depth": depth, "chosen_on": "dev", "dev_queries": len(qids), "dev_ndcg@10": chosen_ndcg,
        "dev_dense_ndcg@10": round(dense, 5), "dev_bm25_ndcg@10": round(lexical, 5), "grid": tried,
        "cv_grid_ndcg@10": round(cv_grid, 5), "adaptive": adaptive_report, "adaptive_adopted": adopted,
        **({"prior_dev_ndcg@10": prior_ndcg, "kept_prior": kept_prior} if prior_ndcg is not None else {}),
    }


_SETTING_KEYS = ("method", "k", "weight", "base", "bias", "coef", "mean", "std", "zclip", "familiar")


def settings_of(fusion: dict[str, Any]) -> dict[str, Any]:
    """Only what :func:`fuse` reads (a manifest's fusion entry also records how it was chosen)."""
    return {k: v for k, v in fusion.items() if k in _SETTING_KEYS or k == "depth"}
