"""How familiar a query's words are to the model: the share of its terms the model saw often in training.

The dense side can only be as good as what the model learned about a query's words. A term it met
fewer than :data:`MIN_COUNT` times in its training text (the training queries and the corpus) has a
barely trained representation: the n-gram table composes *some* vector for it, but the LSTM never
learned what it means. So a model's own fusion (index/fusion.py) scales its dense weight by
:func:`familiar_share`: 1 for a query made of well-known terms, 0.5 when half of them are new.

Why a fixed rule and not a fitted feature: the model's fusion is fitted on its training data's dev split
and on probes of its own corpus, where every query is familiar (medquad dev: mean share 0.98); there is
nothing there to fit it on. The rule was chosen on dev splits of drifted sets (``runs/x/r21/gate_proto.py``,
the twentieth round in the README): a medquad model's fusion on the stdlib docs' dev (a domain never seen,
mean share 0.67) 0.411 → 0.426 (BM25 0.429), on mediqa_qa dev (real questions, 0.94) 0.618 → 0.622,
medquad dev unchanged (0.925). Counting terms seen at least 5 or 20 times, or squaring the share, did no
better on all three at once.

The terms are BM25's (index/lexical.py ``tokenize``: stopwords dropped, stemmed; Chinese characters and
bigrams), so a query is tokenised once for both. They are stored as a Bloom filter (:func:`sketch`),
1–2 bytes per term (a power of two in all), inside the fusion settings, so an index's manifest carries
its fusion whole: a term the model never saw is taken for a known one with probability ≤ 5 %
(:data:`BITS_PER_TERM`, two positions from one blake2b digest: crc32 with two seeds would not do, being
affine, its two positions differ by a constant per term length), which moves a share by a few
hundredths at most.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

MIN_COUNT = 10  # a term seen fewer times in the training text counts as unfamiliar
BITS_PER_TERM = 8  # with HASHES = 2: false positives (1 − e^(−2/8))² ≈ 4.9 %
HASHES = 2
MIN_BITS, MAX_BITS = 1 << 10, 1 << 24  # 128 B … 2 MB
HASH = "blake2b"  # recorded in the sketch: one made with another hash is refused, not misread


def _positions(term: str, nbits: int, hashes: int) -> list[int]:
    """Up to two bit positions from one 64-bit blake2b digest of the term (its two 32-bit halves)."""
    h = int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest(), "little")
    return [(h >> (32 * i) & 0xFFFFFFFF) % nbits for i in range(hashes)]


def sketch(term_lists: Iterable[Sequence[str]], min_count: int = MIN_COUNT) -> dict[str, Any]:
    """The Bloom filter of the terms occurring at least ``min_count`` times over ``term_lists`` (each a
    training text's terms): ``{"bits": base64, "hash": "blake2b", "hashes": 2, "min_count": …, "terms": n}``; the filter's size
    is a power of two bits, ≥ :data:`BITS_PER_TERM` per term."""
    counts: Counter[str] = Counter()
    for terms in term_lists:
        counts.update(terms)
    kept = sorted(t for t, c in counts.items() if c >= min_count)
    nbits = MIN_BITS
    while nbits < BITS_PER_TERM * len(kept) and nbits < MAX_BITS:
        nbits *= 2
    bits = np.zeros(nbits // 8, dtype=np.uint8)
    for t in kept:
        for p in _positions(t, nbits, HASHES):
            bits[p >> 3] |= np.uint8(1 << (p & 7))
    return {"bits": base64.b64encode(bits.tobytes()).decode("ascii"), "hash": HASH, "hashes": HASHES,
            "min_count": min_count, "terms": len(kept)}


@functools.lru_cache(maxsize=16)
def _decode(b64: str) -> bytes:
    return base64.b64decode(b64, validate=True)


def check_sketch(s: Any) -> str | None:
    """Why ``s`` is not a usable sketch, or None."""
    if not isinstance(s, dict):
        return "familiar must be an object"
    if s.get("hash") != HASH:
        return f"familiar.hash must be {HASH!r}, got {s.get('hash')!r}"
    h = s.get("hashes")
    if not isinstance(h, int) or isinstance(h, bool) or not 1 <= h <= 2:
        return f"familiar.hashes must be 1 or 2, got {h!r}"
    for k in ("min_count", "terms"):
        v = s.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return f"familiar.{k} must be a non-negative integer, got {v!r}"
    b = s.get("bits")
    if not isinstance(b, str):
        return "familiar.bits must be a base64 string"
    try:
        n = len(_decode(b))
    except (binascii.Error, ValueError):
        return "familiar.bits is not valid base64"
    if not MIN_BITS <= 8 * n <= MAX_BITS or n & (n - 1):
        return f"familiar.bits must hold a power of two bytes, {MIN_BITS // 8} to {MAX_BITS // 8}, got {n}"
    return None


def familiar_share(s: dict[str, Any], terms: Sequence[str]) -> float:
    """Share of ``terms`` in the sketch ``s`` (checked by :func:`check_sketch`); 1.0 for no terms (nothing
    says the query is unfamiliar; BM25 has nothing to match either)."""
    if not terms:
        return 1.0
    bits = _decode(s["bits"])
    nbits, h = 8 * len(bits), int(s["hashes"])
    known = sum(all(bits[p >> 3] >> (p & 7) & 1 for p in _positions(t, nbits, h)) for t in terms)
    return known / len(terms)


def summary(s: dict[str, Any]) -> dict[str, Any]:
    """The sketch without its bits (for ``/info``): how many terms, counted how."""
    return {k: v for k, v in s.items() if k != "bits"} | {"bytes": len(_decode(s["bits"]))}


def public_fusion(fusion: dict[str, Any]) -> dict[str, Any]:
    """Fusion settings as ``/info`` and reports show them: the sketch by its size, not its bits."""
    f = dict(fusion)
    if isinstance(f.get("familiar"), dict) and check_sketch(f["familiar"]) is None:
        f["familiar"] = summary(f["familiar"])
    return f
