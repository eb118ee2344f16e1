"""The lexical side (index/lexical.py) against BM25 computed by hand, and RRF against a hand example.

bm25s ``BM25()`` defaults are Lucene's BM25: k1 = 1.5, b = 0.75,
idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5)), score(q, d) = Σ_t∈q idf(t) · tf / (tf + k1 · (1 − b + b · |d| / avgdl)).
"""

from __future__ import annotations

import math

import pytest

from index.fusion import rrf
from index.lexical import BM25, zh_tokens

K1, B = 1.5, 0.75


def bm25_by_hand(query: list[str], docs: list[list[str]]) -> list[float]:
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = []
    for d in docs:
        s = 0.0
        for t in set(query):
            df = sum(t in doc for doc in docs)
            tf = d.count(t)
            if df == 0 or tf == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            s += idf * tf / (tf + K1 * (1 - B + B * len(d) / avgdl))
        out.append(s)
    return out


def test_zh_tokens_are_characters_and_bigrams():
    assert zh_tokens("感冒 发烧") == ["感", "冒", "发", "烧", "感冒", "冒发", "发烧"]


def test_chinese_bm25_equals_the_formula_by_hand():
    texts = ["感冒发烧怎么办", "发烧头痛", "高血压吃什么药", "感冒了吃什么药好", "头痛"]
    docs = [zh_tokens(t) for t in texts]
    bm = BM25("zh").index(texts)
    for q in ["感冒", "吃什么药", "发烧头痛怎么办"]:
        want = bm25_by_hand(zh_tokens(q), docs)
        rows, scores = bm.search([q], len(texts))
        got = dict(zip(rows[0].tolist(), scores[0].tolist(), strict=True))
        assert [got.get(i, 0.0) for i in range(len(texts))] == pytest.approx(want, rel=1e-5, abs=1e-6)
        ranked = sorted(range(len(texts)), key=lambda i: -want[i])
        assert rows[0][0] == ranked[0]


def test_english_bm25_equals_the_formula_by_hand():
    # Words that no stopword list drops and the Snowball stemmer leaves as they are (or stems the same
    # way in query and documents: "fevers" → "fever"), so the tokens are known without bm25s.
    texts = ["fever cough", "fever fever rash", "cough", "rash pain pain pain", "fevers"]
    tokens = [["fever", "cough"], ["fever", "fever", "rash"], ["cough"], ["rash", "pain", "pain", "pain"], ["fever"]]
    bm = BM25("en").index(texts)
    for q, qt in [("fever", ["fever"]), ("rash pain", ["rash", "pain"]), ("cough fever", ["cough", "fever"])]:
        want = bm25_by_hand(qt, tokens)
        rows, scores = bm.search([q], len(texts))
        got = dict(zip(rows[0].tolist(), scores[0].tolist(), strict=True))
        assert [got.get(i, 0.0) for i in range(len(texts))] == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_a_query_with_no_known_word_matches_nothing():
    bm = BM25("en").index(["fever cough", "rash"])
    _, scores = bm.search(["the of and", "zzzz"], 2)
    assert (scores == 0).all()


def test_rrf_on_a_hand_computed_example():
    # k = 60: a → 1/61 + 1/63, b → 1/62, c → 1/63 + 1/61, d → 1/62 (ties: first appearance).
    got = rrf([["a", "b", "c"], ["c", "d", "a"]], k=60)
    assert [d for d, _ in got] == ["a", "c", "b", "d"]
    assert [s for _, s in got] == pytest.approx([1 / 61 + 1 / 63, 1 / 63 + 1 / 61, 1 / 62, 1 / 62])
    # Weights scale each ranking's share.
    w = dict(rrf([["a"], ["b"]], k=1, weights=[2.0, 1.0]))
    assert w == {"a": 1.0, "b": 0.5}

