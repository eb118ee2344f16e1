"""The query-adaptive hybrid fusion (index/fusion.py), the probes (index/probes.py) and the fusion a model
carries (fusion.json): hand examples, a synthetic population where the right weight depends on a
feature, and the build paths (with and without the corpus's own dev split)."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

from index import SearchIndex, build_index
from index.build import fit_model_fusion
from index.evaluation import ndcg_at_k
from index.familiar import MIN_COUNT, check_sketch, familiar_share, public_fusion, sketch
from index.fusion import (
    DEV_SLACK,
    FEATURES,
    W_STEPS,
    ZCLIP,
    Candidates,
    ShareFit,
    adaptive_weight,
    balanced_share,
    check_fusion,
    choose_fusion,
    choose_model_fusion,
    fit_adaptive,
    fuse,
    query_features,
)
from index.probes import probe_queries
from models.data import load_beir
from models.encoder import Encoder
from models.io import ModelDirError, load_model, write_fusion


def adaptive(**kw: object) -> dict:
    s = {"method": "adaptive", "base": "weighted", "bias": 0.5, "coef": {"overlap": 1.0},
         "mean": {"overlap": 0.5}, "std": {"overlap": 0.25}}
    s.update(kw)
    return s


def test_features_of_a_hand_example():
    c = Candidates(dense=[1, 2, 3], lexical=[3, 4], bm25={3: 4.0, 4: 2.0}, cos={1: 0.9, 2: 0.5, 3: 0.1, 4: 0.3},
                   qlen=3, known=2 / 3)
    f = query_features(c)
    assert f == pytest.approx({"top1": 0.9, "margin": 0.8, "overlap": 0.1, "qlen": math.log(4), "known": 2 / 3})


def test_adaptive_weight_and_fuse_by_hand():
    c = Candidates(dense=[1, 2, 3], lexical=[3, 4], bm25={3: 4.0, 4: 2.0}, cos={1: 0.9, 2: 0.5, 3: 0.1, 4: 0.3})
    s = adaptive()
    # overlap 0.1 → z = (0.1 − 0.5) / 0.25 = −1.6 → w = clip(0.5 − 1.6) = 0: BM25 alone decides.
    assert adaptive_weight(s, query_features(c)) == 0.0
    got = fuse(c, s)
    assert [r for r, _ in got[:2]] == [3, 4] and got[0][1] == pytest.approx(1.0) and got[1][1] == pytest.approx(0.5)
    # A bias high enough: the dense order, exactly the weighted fusion with w = 1.
    s1 = adaptive(bias=3.0)
    assert fuse(c, s1) == fuse(c, {"method": "weighted", "weight": 1.0})
    # RRF base at w = ½ is plain RRF.
    half = adaptive(base="rrf", k=1, bias=0.5, coef={}, mean={}, std={})
    assert [(r, pytest.approx(s)) for r, s in fuse(c, {"method": "rrf", "k": 1})] == fuse(c, half)


@pytest.mark.parametrize("bad, why", [
    (adaptive(base="max"), "base"),
    (adaptive(base="rrf"), "k > 0"),
    (adaptive(k=None), "k > 0"),  # fuse reads k for the weighted base too
    (adaptive(k=-1), "k > 0"),
    (adaptive(k="x"), "k > 0"),
    (adaptive(bias=float("nan")), "bias"),
    (adaptive(bias="0.5"), "bias"),
    (adaptive(coef={"nope": 1.0}, mean={"nope": 0}, std={"nope": 1}), "coef"),
    (adaptive(std={"overlap": 0.0}), "std must be > 0"),
    (adaptive(mean={}), "mean"),
    (adaptive(zclip=0), "zclip > 0"),
    (adaptive(zclip=-1.0), "zclip > 0"),
    (adaptive(zclip="1"), "zclip > 0"),
    (adaptive(zclip=True), "zclip > 0"),
    ({"method": "rrf", "k": 10, "depth": "abc"}, "depth"),
    ({"method": "weighted", "weight": True}, "weight"),
])
def test_bad_adaptive_settings_are_refused(bad, why):
    assert why in (check_fusion(bad) or "")


def test_fit_finds_the_weight_that_depends_on_a_feature():
    # Two populations: queries with feature +1 are answered best by the dense side (w = 1), those with
    # feature −1 by BM25 (w = 0). No constant weight serves both; the adaptive one does.
    n = 200
    z = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)[:, None]
    table = np.where(z > 0, W_STEPS[None, :], 1 - W_STEPS[None, :])  # NDCG rises with w, or falls
    b, th = fit_adaptive(table, z)
    w = np.clip(b + z[:, 0] * th[0], 0, 1)
    assert th[0] > 0 and (w[z[:, 0] > 0] > 0.9).all() and (w[z[:, 0] < 0] < 0.1).all()
    assert table.mean(axis=0).max() == pytest.approx(0.5)  # the best constant


def _population(rng: np.random.Generator, n: int) -> tuple[list[Candidates], list[str], dict, list[str]]:
    """Synthetic queries where the dense side is right when it agrees with BM25 in its top 10 and wrong
    otherwise (its top hit is a wrong document, BM25's the right one)."""
    cands, qids, qrels, ids = [], [], {}, [f"d{i}" for i in range(40)]
    for q in range(n):
        agree = q % 2 == 0
        right = int(rng.integers(0, 40))
        others = [int(x) for x in rng.permutation([i for i in range(40) if i != right])[:12]]
        dense = [right, *others[:9]] if agree else others[:10]
        lexical = ([*others[:4], right] if agree else [right, *others[10:12]])
        cos = {r: 0.9 - 0.01 * i for i, r in enumerate(dense)}
        cos.update({r: 0.2 for r in lexical if r not in cos})
        bm25 = {r: 10.0 - i for i, r in enumerate(lexical)}
        cands.append(Candidates(dense, lexical, bm25, cos, qlen=5, known=1.0))
        qids.append(f"q{q}")
        qrels[f"q{q}"] = {ids[right]: 1}
    return cands, qids, qrels, ids


def test_choose_fusion_adopts_adaptive_only_when_it_generalises():
    rng = np.random.default_rng(0)
    cands, qids, qrels, ids = _population(rng, 200)
    f = choose_fusion(cands, qids, qrels, ids)
    assert f["adaptive_adopted"] and f["method"] == "adaptive"
    assert f["dev_ndcg@10"] > max(t["ndcg@10"] for t in f["grid"]) + 0.05
    assert check_fusion(f) is None and json.loads(json.dumps(f)) == f
    # Features that carry nothing (every query agrees): no adaptive weight is adopted.
    same = [c for c, q in zip(cands, qids, strict=True) if int(q[1:]) % 2 == 0]
    f2 = choose_fusion(same, [q for q in qids if int(q[1:]) % 2 == 0], qrels, ids)
    assert not f2["adaptive_adopted"] and f2["method"] in ("rrf", "weighted")


def _split_by_length(rng: np.random.Generator) -> tuple[list[Candidates], list[str], dict, list[Candidates], list[str], dict, list[str]]:
    """Queries whose sides disagree, twice over: short and dense-right, long and BM25-right, with the same
    candidates; only the length (and the known share) tells them apart."""
    cands, qids, qrels, ids = _population(rng, 200)
    short, sq, sr, long_, lq, lr = [], [], {}, [], [], {}
    for c, q in zip(cands, qids, strict=True):
        if int(q[1:]) % 2:  # disagreeing: dense's top hit is wrong in _population; make it right here
            short.append(Candidates(c.dense, c.lexical, c.bm25, c.cos, qlen=4, known=0.8))
            sq.append(q)
            sr[q] = {ids[c.dense[0]]: 1}
            long_.append(Candidates(c.dense, c.lexical, c.bm25, c.cos, qlen=20, known=1.0))
            lq.append(q + "L")
            lr[q + "L"] = qrels[q]
    return short, sq, sr, long_, lq, lr, ids


def test_model_fusion_ignores_what_probes_have_by_construction():
    """Probes are long and every word of theirs is known (index/probes.py): a model's fusion allowed to use
    qlen or known would learn "long = probe = BM25" and send short queries of an unseen domain to the dense
    side. Here dev queries are short and dense-right, probes long and BM25-right, candidates alike."""
    short, sq, sr, long_, lq, lr, ids = _split_by_length(np.random.default_rng(0))
    f = choose_model_fusion(short, sq, sr, long_, [lr[q] for q in lq], ids)
    assert not {"qlen", "known"} & set(f.get("coef", {}))
    # The same candidates fuse the same way, whatever the query's length.
    for s, lo in zip(short, long_, strict=True):
        assert fuse(s, f) == fuse(lo, f)
    # A corpus's own dev queries are real: there the length may (and here must) steer the weight.
    g = choose_fusion(short + long_, sq + lq, {**sr, **lr}, ids)
    assert g["adaptive_adopted"] and g["coef"].get("qlen", 0) < 0
    assert adaptive_weight(g, query_features(short[0])) > adaptive_weight(g, query_features(long_[0]))


def test_model_fusion_keeps_its_own_dev_split():
    """Probes may pull the weight towards BM25 only as far as the model's own dev split allows: here every
    dev query is dense-right and the probes (same candidates as the disagreeing half) BM25-right, so an
    equal mixture would give that half to BM25 and lose a quarter of dev's NDCG."""
    rng = np.random.default_rng(0)
    cands, qids, qrels, ids = _population(rng, 200)
    dev_rels = {q: {ids[c.dense[0]]: 1} for c, q in zip(cands, qids, strict=True)}  # dense right everywhere
    odd = [(c, q) for c, q in zip(cands, qids, strict=True) if int(q[1:]) % 2]
    f = choose_model_fusion(cands, qids, dev_rels, [c for c, _ in odd], [qrels[q] for _, q in odd], ids)
    fused = np.mean([ndcg_at_k([ids[r] for r, _ in fuse(c, f)[:10]], dev_rels[q], 10) for c, q in zip(cands, qids, strict=True)])
    assert fused >= 1.0 - DEV_SLACK
    # The share kept is balanced_share's over the figures the fit reports (the better side of each population).
    fit, mf = f["model_fit"]["adaptive"], f["model_fit"]
    dev_best = max(f["dev_dense_ndcg@10"], f["dev_bm25_ndcg@10"])
    probe_best = max(mf["probe_dense_ndcg@10"], mf["probe_bm25_ndcg@10"])
    expected = max(max(0.0, dev_best - fit["dev_ndcg@10"]) / 0.01, max(0.0, probe_best - fit["probe_ndcg@10"]) / 0.1)
    assert fit["shortfall"] == pytest.approx(expected, abs=2e-3)


def test_probes_are_sentences_of_their_document(tiny_beir):
    data = load_beir(tiny_beir)
    texts, rels = probe_queries(data.corpus, 30, "en", seed=1)
    assert texts and len(texts) == len(rels)
    by_id = dict(zip(data.corpus.ids, data.corpus.texts, strict=True))
    for t, r in zip(texts, rels, strict=True):
        (doc,) = r
        assert t in by_id[doc] and len(t.split()) >= 6
    assert probe_queries(data.corpus, 30, "en", seed=1) == (texts, rels)  # deterministic
    zh, zr = probe_queries(data.corpus, 10, "zh", seed=1)
    assert all(t in by_id[next(iter(r))] for t, r in zip(zh, zr, strict=True))


def test_model_fusion_is_used_without_dev_and_refined_with_it(tiny_model_dir, tiny_beir, tmp_path):
    data = load_beir(tiny_beir)
    model = tmp_path / "model"
    import shutil

    shutil.copytree(tiny_model_dir, model)
    f = fit_model_fusion(Encoder.load(model), data, probes=100)
    assert f is not None and check_fusion(f) is None and f["dev_queries"] == len(data.split("dev"))
    write_fusion(model, f)
    enc = Encoder.load(model)
    assert enc.fusion == f and enc.fingerprint == Encoder.load(tiny_model_dir).fingerprint  # not fingerprinted
    # No dev data: the index serves the model's fusion.
    m = build_index(enc, tiny_beir / "corpus.jsonl", tmp_path / "nodev", show_progress=False)
    assert m["fusion"]["chosen_on"] == "model" and m["fusion"]["method"] == f["method"]
    with SearchIndex.load(tmp_path / "nodev", enc) as idx:
        q = [data.queries[next(iter(data.split("test")))]]
        hits = idx.search_hybrid(q, enc.encode(q), 5)[0]
        assert len(hits) == 5
    # With dev data: chosen on it, the model's fusion compared as the prior.
    m2 = build_index(enc, tiny_beir, tmp_path / "dev", show_progress=False, dev_data=tiny_beir)
    assert m2["fusion"]["chosen_on"] == "dev" and "prior_dev_ndcg@10" in m2["fusion"]


@pytest.mark.parametrize("content", ["[]", "{not json", "null"])
def test_a_damaged_fusion_file_is_named(tiny_model_dir, tmp_path, content):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "fusion.json").write_text(content, encoding="utf-8")
    with pytest.raises(ModelDirError, match="fusion.json"):
        load_model(model)


def test_features_listed_once():
    assert len(set(FEATURES)) == len(FEATURES) == 5


def test_clipped_features_bound_each_ones_pull_on_the_weight():
    """With zclip, a feature far out moves the weight by at most |θ|·zclip: overlap 0.1 is 1.6 standard
    deviations under its mean, so bias 1.2 falls to 0 unclipped and to 0.2 clipped at 1."""
    c = Candidates(dense=[1, 2, 3], lexical=[3, 4], bm25={3: 4.0, 4: 2.0}, cos={1: 0.9, 2: 0.5, 3: 0.1, 4: 0.3})
    s = adaptive(bias=1.2)
    assert adaptive_weight(s, query_features(c)) == 0.0
    assert adaptive_weight({**s, "zclip": 1.0}, query_features(c)) == pytest.approx(0.2)
    got, want = fuse(c, {**s, "zclip": 1.0}), fuse(c, {"method": "weighted", "weight": 0.2})
    assert [r for r, _ in got] == [r for r, _ in want] and [x for _, x in got] == pytest.approx([x for _, x in want])
    # Within the clip nothing changes: overlap 0.4 is 0.4 deviations under, w = 1.2 − 0.4 either way.
    near = {**query_features(c), "overlap": 0.4}
    assert adaptive_weight({**s, "zclip": 1.0}, near) == adaptive_weight(s, near) == pytest.approx(0.8)


def _sided(rng: np.random.Generator, ids: list[str], dense_right: bool, shared: int) -> tuple[Candidates, dict[str, int]]:
    """One query whose right document tops one side only, the two top 10s sharing ``shared`` documents."""
    right = int(rng.integers(0, len(ids)))
    o = [int(x) for x in rng.permutation([i for i in range(len(ids)) if i != right])]
    dense, lexical = ([right, *o[:9]], [*o[9:19 - shared], *o[:shared]]) if dense_right else (o[:10], [right, *o[:shared], *o[10:19 - shared]])
    cos = {r: 0.9 - 0.01 * i for i, r in enumerate(dense)}
    cos.update({r: 0.2 for r in lexical if r not in cos})
    return Candidates(dense, lexical, {r: 10.0 - i for i, r in enumerate(lexical)}, cos, qlen=5, known=1.0), {ids[right]: 1}


def test_a_model_fusion_clips_its_features_and_is_measured_so():
    """Dev queries dense-right with overlap 0.3-0.6, probes BM25-right with overlap 0-0.1: the mixture's
    weight follows overlap. One dev query shares nothing with BM25 (z far under −1): unclipped it goes to
    BM25 and misses, clipped it keeps enough dense weight. The dev figure is the clipped one."""
    rng, ids = np.random.default_rng(0), [f"d{i}" for i in range(40)]
    dev = [_sided(rng, ids, True, int(rng.integers(3, 7)) if i < 200 else 0) for i in range(201)]
    probes = [_sided(rng, ids, False, int(rng.integers(0, 2))) for _ in range(200)]
    qids = [f"q{i}" for i in range(len(dev))]
    qrels = {q: rel for q, (_, rel) in zip(qids, dev, strict=True)}
    cands = [c for c, _ in dev]
    f = choose_model_fusion(cands, qids, qrels, [c for c, _ in probes], [r for _, r in probes], ids)
    assert f["chosen_on"] == "dev+probes" and f["zclip"] == ZCLIP and f["model_fit"]["zclip_kept"]
    assert check_fusion(f) is None

    def dev_ndcg(s: dict) -> float:
        return float(np.mean([ndcg_at_k([ids[r] for r, _ in fuse(c, s)[:10]], qrels[q], 10) for c, q in zip(cands, qids, strict=True)]))

    assert f["dev_ndcg@10"] == pytest.approx(dev_ndcg(f), abs=1e-5)
    assert f["dev_ndcg@10_fit"] == pytest.approx(dev_ndcg({k: v for k, v in f.items() if k != "zclip"}), abs=1e-5)
    assert f["dev_ndcg@10"] > f["dev_ndcg@10_fit"]  # the outlier: found with the clip, missed without
    # A fit on dev alone (no probes) learnt no slope from probes: it is applied as fitted.
    g = choose_model_fusion(*_population(np.random.default_rng(0), 200)[:3], [], [], ids)
    assert g["method"] == "adaptive" and "zclip" not in g


def test_cross_validation_without_a_held_out_fold_adopts_nothing():
    from index.fusion import _cv

    table = np.tile(W_STEPS, (3, 1))
    z = np.zeros((3, 1))
    assert _cv(table, z, np.zeros(3, dtype=int), adaptive=True) == -1.0  # every query in one fold
    assert _cv(table, z, np.array([0, 1, 2]), adaptive=False) == pytest.approx(1.0)


def _share_fit(share: float, dev_value: float, probe_value: float) -> ShareFit:
    empty = np.zeros((0, 0))
    return ShareFit(share, empty, empty, [], {}, {}, 0.0, np.zeros(0), dev_value, probe_value)


def test_model_fusion_takes_the_share_that_balances_dev_and_probes():
    """Dev rises and the probes fall as dev's share grows; the fit kept is the one whose worse shortfall
    (dev's in units of 0.01, the probes' in units of 0.1) is smallest among those keeping dev within
    DEV_SLACK, not merely the first that keeps dev, nor the one best on dev."""
    dev_best, probe_best = 0.915, 0.77
    fits = [_share_fit(0.5, 0.905, 0.76), _share_fit(0.7, 0.909, 0.75), _share_fit(0.9, 0.914, 0.73),
            _share_fit(0.95, 0.915, 0.60)]
    chosen = balanced_share(fits, dev_best, probe_best)
    assert [f.kept for f in fits] == [False, True, True, True]  # 0.905 is 0.010 under: more than DEV_SLACK
    assert chosen.share == 0.9 and chosen.shortfall == pytest.approx(max(0.1, 0.4))
    # Were the probes to hold up at 0.95, the best on dev would win; with no fit keeping dev, the last one.
    fits[3] = _share_fit(0.95, 0.915, 0.765)
    assert balanced_share(fits, dev_best, probe_best).share == 0.95
    assert balanced_share([_share_fit(0.5, 0.80, 0.77), _share_fit(0.6, 0.81, 0.7)], dev_best, probe_best).share == 0.6


# ---- the familiar terms (index/familiar.py) -------------------------------------------------------------

def test_the_sketch_holds_the_terms_seen_often_and_little_else():
    common = [f"term{i}" for i in range(300)]
    texts = [common] * MIN_COUNT + [["rare"] * (MIN_COUNT - 1)]  # "rare": one short of the count
    s = sketch(texts)
    assert check_sketch(s) is None and s["terms"] == 300 and s["min_count"] == MIN_COUNT
    assert familiar_share(s, common) == 1.0 and familiar_share(s, []) == 1.0
    unseen = [f"other{i}" for i in range(2000)]
    assert familiar_share(s, unseen) < 0.1  # false positives only (~5 % by design)
    strangers = [u for u in unseen if familiar_share(s, [u]) == 0.0][:2]
    assert familiar_share(s, ["term1", "term2", *strangers]) == 0.5
    assert sketch(texts) == s  # deterministic: the same bits for the same text
    big = sketch([[f"w{i}" for i in range(5000)]], min_count=1)
    assert len(big["bits"]) > len(s["bits"]) and familiar_share(big, ["w1", "w4999"]) == 1.0


_GOOD = {"bits": base64.b64encode(bytes(128)).decode(), "hash": "blake2b", "hashes": 2, "min_count": 10, "terms": 0}


@pytest.mark.parametrize("bad, why", [
    ([], "object"),
    ({**_GOOD, "hash": "crc32"}, "hash must be"),
    ({**_GOOD, "hashes": 3}, "hashes"),
    ({**_GOOD, "hashes": 0}, "hashes"),
    ({**_GOOD, "hashes": True}, "hashes"),
    ({**_GOOD, "bits": 5}, "base64 string"),
    ({**_GOOD, "bits": "not base64!"}, "not valid base64"),
    ({**_GOOD, "bits": "AAAA"}, "power of two"),  # 3 bytes
    ({**_GOOD, "bits": "A" * 512}, "power of two"),  # 384 bytes
    ({**_GOOD, "bits": base64.b64encode(bytes(1 << 22)).decode()}, "power of two"),  # 4 MB: over the limit
    ({**_GOOD, "terms": -1}, "terms"),
    ({**_GOOD, "min_count": "10"}, "min_count"),
])
def test_a_bad_sketch_is_refused(bad, why):
    assert check_sketch(_GOOD) is None
    assert why in (check_sketch(bad) or "")
    assert why in (check_fusion({"method": "weighted", "weight": 1.0, "familiar": bad}) or "")


def test_the_dense_weight_follows_the_share_of_familiar_terms():
    """Dense and BM25 disagree; weight 1 on the dense side. Known terms: the dense order. Unknown terms:
    the dense weight scaled to 0, BM25 decides. Half known: the weighted fusion at w = ½."""
    s = {"method": "weighted", "weight": 1.0, "familiar": sketch([["glaucoma", "symptom"]] * MIN_COUNT)}
    base = Candidates(dense=[1, 2, 3], lexical=[3, 2], bm25={3: 4.0, 2: 1.0}, cos={1: 0.9, 2: 0.5, 3: 0.1})

    def with_terms(*terms: str) -> Candidates:
        return Candidates(base.dense, base.lexical, base.bm25, base.cos, terms=terms)

    assert [r for r, _ in fuse(with_terms("glaucoma", "symptom"), s)] == [1, 2, 3]
    assert fuse(with_terms("glaucoma", "symptom"), s) == fuse(base, {"method": "weighted", "weight": 1.0})
    assert fuse(with_terms("csv", "sniffer"), s) == fuse(base, {"method": "weighted", "weight": 0.0})
    assert fuse(with_terms("glaucoma", "csv"), s) == fuse(base, {"method": "weighted", "weight": 0.5})
    a = adaptive(bias=3.0, familiar=s["familiar"])  # the adaptive weight (1 here) is scaled alike
    assert fuse(with_terms("csv", "sniffer"), a) == fuse(base, {"method": "weighted", "weight": 0.0})
    shown = public_fusion(s)["familiar"]
    assert "bits" not in shown and shown["terms"] == 2 and shown["bytes"] == 128 and "bits" in s["familiar"]


def test_a_model_fusion_carries_the_familiar_terms_and_is_measured_with_them():
    rng = np.random.default_rng(0)
    cands, qids, qrels, ids = _population(rng, 200)
    cands = [Candidates(c.dense, c.lexical, c.bm25, c.cos, c.qlen, c.known, terms=("known",)) for c in cands]
    fam = sketch([["known"]] * MIN_COUNT)
    f = choose_model_fusion(cands, qids, qrels, [], [], ids, familiar=fam)
    g = choose_model_fusion(cands, qids, qrels, [], [], ids)
    assert f["method"] != "rrf" and f["familiar"] == fam and "familiar" not in g
    assert f["dev_ndcg@10"] == pytest.approx(g["dev_ndcg@10"], abs=1e-4)  # every dev term known: nothing moves
    # Dev queries made of unknown terms: BM25 alone, and the dev figure says so.
    strange = [Candidates(c.dense, c.lexical, c.bm25, c.cos, c.qlen, c.known, terms=("unknown",)) for c in cands]
    h = choose_model_fusion(strange, qids, qrels, [], [], ids, familiar=fam)
    assert h["dev_ndcg@10"] == pytest.approx(h["dev_bm25_ndcg@10"], abs=1e-4)
    assert h["dev_ndcg@10_fit"] == g["dev_ndcg@10"]


def test_an_index_applies_the_familiar_terms_it_was_given(tiny_model_dir, tiny_beir, tmp_path):
    """End to end, built and live: a model whose fusion puts weight 1 on the dense side, its sketch made of
    the training queries' terms only. A query half of whose terms are new ranks as the weighted fusion at
    ½ (the index's own tokenisation), one made of known terms as the dense side alone."""
    import shutil

    from index.lexical import tokenize
    from index.live import LiveIndex

    data = load_beir(tiny_beir)
    train_terms = tokenize([data.queries[q] for q in data.split("train")], "en")
    fam = sketch(train_terms, min_count=1)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    write_fusion(model, {"method": "weighted", "weight": 1.0, "familiar": fam, "chosen_on": "dev", "dev_ndcg@10": 0.5})
    enc = Encoder.load(model)
    m = build_index(enc, tiny_beir / "corpus.jsonl", tmp_path / "index", show_progress=False)
    assert m["fusion"]["familiar"] == fam
    known = [t for terms in train_terms for t in terms][0]
    q_known = known
    q_half = f"{known} {data.corpus.texts[0].split()[-1]}"  # a corpus word no training query has
    (half_terms,) = tokenize([q_half], "en")
    assert familiar_share(fam, half_terms) == 0.5, half_terms
    assert familiar_share(fam, tokenize([q_known], "en")[0]) == 1.0
    for opener in (SearchIndex.load, LiveIndex.open):
        with opener(tmp_path / "index", enc) as idx:
            for q, w in ((q_known, 1.0), (q_half, 0.5)):
                v = enc.encode([q])
                got = [(h.id, round(h.score, 6)) for h in idx.search_hybrid([q], v, 10)[0]]
                want = [(h.id, round(h.score, 6)) for h in idx.search_hybrid([q], v, 10, fusion={"method": "weighted", "weight": w})[0]]
                assert got == want, (opener, q)
            v = enc.encode([q_half])
            assert idx.search_hybrid([q_half], v, 10)[0] != idx.search_hybrid([q_half], v, 10, fusion={"method": "weighted", "weight": 1.0})[0]


def test_an_index_carries_and_applies_the_clip_of_its_models_fusion(tiny_model_dir, tiny_beir, tmp_path):
    """End to end, built and live: the model's adaptive fusion with zclip reaches the manifest and /info's
    view of it, and a query 3 deviations out on overlap gets w = bias − 1·zclip = 0.5, not 0."""
    import shutil

    from index.live import LiveIndex

    data = load_beir(tiny_beir)
    q = data.queries[next(iter(data.split("dev")))]
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    enc = Encoder.load(model)
    build_index(enc, tiny_beir / "corpus.jsonl", tmp_path / "probe", show_progress=False)
    with SearchIndex.load(tmp_path / "probe", enc) as idx:
        (c,) = idx.hybrid_candidates([q], enc.encode([q]), 100)
    overlap = query_features(c)["overlap"]
    fusion = adaptive(bias=1.5, mean={"overlap": overlap + 0.75}, zclip=1.0)  # z = −3 for this query
    write_fusion(model, {**fusion, "chosen_on": "dev+probes", "dev_ndcg@10": 0.5})
    enc = Encoder.load(model)
    m = build_index(enc, tiny_beir / "corpus.jsonl", tmp_path / "index", show_progress=False)
    assert m["fusion"]["zclip"] == 1.0 and public_fusion(m["fusion"])["zclip"] == 1.0
    vec = enc.encode([q])
    unclipped = {k: x for k, x in fusion.items() if k != "zclip"}
    for opener in (SearchIndex.load, LiveIndex.open):
        with opener(tmp_path / "index", enc) as idx:
            got, half, zero = ([(h.id, round(h.score, 6)) for h in idx.search_hybrid([q], vec, 10, fusion=f)[0]]
                               for f in (None, {"method": "weighted", "weight": 0.5}, unclipped))
            assert got == half and got != zero, opener  # unclipped, w = 0: BM25's scores alone


def test_the_sketch_keeps_its_false_positive_rate_at_full_load():
    """At the design load (8 bits a term) with terms of one length (Chinese bigrams are all 6 bytes), the
    two positions must be independent: crc32 with two seeds gave 14.5 % here, not ≤ 5 %."""
    known = [f"k{i:05d}" for i in range(1024)]
    s = sketch([known], min_count=1)
    assert len(base64.b64decode(s["bits"])) == 1024  # 8,192 bits: exactly 8 a term
    assert familiar_share(s, known) == 1.0
    assert familiar_share(s, [f"u{i:05d}" for i in range(5000)]) < 0.07
