"""Text → words → n-gram ids (DSSM word hashing).

English (and any non-CJK word): letter trigrams of the word with boundary marks, as in DSSM
(Huang et al., 2013): ``good`` → ``#good#`` → ``#go goo ood od#``.

Chinese: every CJK character is a word. One character alone carries little (about 3,500 characters
cover nearly all text, and most are ambiguous), so a character's features are the character itself
plus the two bigrams it forms with its neighbours (``#`` at a text boundary): in 感冒灵, 冒 →
``冒``, ``感冒``, ``冒灵``. The bigrams give the word-level signal that Chinese word segmentation would
give, without a segmenter, and the unigram keeps a character that never occurred in a known bigram
from being lost. Mixed text works in either language: each word is hashed by its own script.

Vocabulary: the most frequent n-grams of the training text get their own ids; every other n-gram
falls into one of ``num_buckets`` hashed buckets (a stable hash, not Python's salted ``hash``), so no
input is silently dropped. The vocabulary is a versioned JSON file, deterministic for given texts.
"""

from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

VOCAB_FORMAT = "lstm-dssm-vocab"
VOCAB_VERSION = 1
WORD_CACHE_MAX = 1 << 14  # words whose n-gram ids a vocabulary remembers (~5–8 MB)
CACHED_WORD_CHARS = 32  # longer words are hashed each time (rare; bounds a cache entry's size)

# CJK ideographs (unified + extension A + compatibility), kana and hangul are written without spaces:
# each character is a word of its own.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{_CJK}]")
# A word is: one CJK character | a run of letters/digits (no underscore) | one symbol character
# (emoji, math, currency). Punctuation and spaces separate words and are dropped.
_WORD_RE = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+|[^\w\s]")


def normalize(text: str) -> str:
    """NFKC (full-width → ASCII, ligatures, compatibility forms) and lower-casing."""
    return unicodedata.normalize("NFKC", text).lower()


def is_cjk(ch: str) -> bool:
    return bool(_CJK_RE.fullmatch(ch))


def split_words(text: str) -> list[str]:
    """Normalised words of ``text``; punctuation is dropped, symbols such as emoji are kept."""
    words = []
    for w in _WORD_RE.findall(normalize(text)):
        # A lone punctuation character (category P*) is a separator, not a word.
        if len(w) == 1 and unicodedata.category(w).startswith("P"):
            continue
        words.append(w)
    return words


def letter_trigrams(word: str) -> list[str]:
    """DSSM word hashing: ``good`` → ``['#go', 'goo', 'ood', 'od#']``; ``a`` → ``['#a#']``."""
    w = f"#{word}#"
    return [w[i : i + 3] for i in range(len(w) - 2)]


def _is_cjk_char(w: str) -> bool:
    return len(w) == 1 and is_cjk(w)


def _cjk_grams(words: Sequence[str], i: int) -> list[str]:
    """The n-grams of the CJK character ``words[i]``: itself and its bigrams with its neighbours."""
    w = words[i]
    left = words[i - 1] if i > 0 and _is_cjk_char(words[i - 1]) else "#"
    right = words[i + 1] if i + 1 < len(words) and _is_cjk_char(words[i + 1]) else "#"
    return [w, left + w, w + right]


def word_ngrams(words: Sequence[str]) -> list[list[str]]:
    """The n-grams of every word, in order. CJK characters see their neighbours (see module doc)."""
    return [_cjk_grams(words, i) if _is_cjk_char(w) else letter_trigrams(w) for i, w in enumerate(words)]


def cjk_ratio(texts: Iterable[str]) -> float:
    """Share of CJK characters among the non-space characters of ``texts``."""
    cjk = total = 0
    for t in texts:
        for ch in t:
            if ch.isspace():
                continue
            total += 1
            cjk += is_cjk(ch)
    return cjk / total if total else 0.0


def detect_lang(texts: Iterable[str]) -> str:
    """``zh`` when at least 30% of the characters are CJK, else ``en``."""
    return "zh" if cjk_ratio(texts) >= 0.3 else "en"


def _ngram_id(index: dict[str, int], learned: int, buckets: int, ngram: str) -> int:
    """A learned n-gram's id, else its hashed bucket's (after the ``learned`` ids)."""
    i = index.get(ngram)
    if i is not None:
        return i
    # surrogatepass: a lone surrogate (valid in JSON as "\ud800") still hashes instead of raising.
    return learned + zlib.crc32(ngram.encode("utf-8", "surrogatepass")) % buckets


class Vocab:
    """N-gram → id: ``len(ngrams)`` learned ids, then ``num_buckets`` hashed ids for the rest."""

    def __init__(self, ngrams: Sequence[str], num_buckets: int = 20_000, lang: str = "en",
                 stopwords: Iterable[str] = ()) -> None:
        if num_buckets < 1:
            raise ValueError("num_buckets must be at least 1")
        self.ngrams = list(ngrams)
        self.num_buckets = num_buckets
        self.lang = lang
        # Words the model skips (models/stopwords.py), as split_words writes them (normalised).
        self.stopwords = frozenset(split_words(" ".join(stopwords)))
        self._index = {g: i for i, g in enumerate(self.ngrams)}
        if len(self._index) != len(self.ngrams):
            raise ValueError("duplicate n-grams in vocabulary")
        # Word → its n-gram ids, for words whose n-grams are theirs alone (not a CJK character, whose
        # bigrams depend on its neighbours). Queries repeat words, so a search request's featurizing
        # is mostly cache hits (a medquad query: ~40 → ~18 µs). Least recently used out; thread-safe.
        # Words of at most CACHED_WORD_CHARS characters only, so an entry stays small (~300–500 B) however
        # long a client's words are. A closure over the lookup table, not a bound method: a cache holding
        # its own Vocab would be a reference cycle, freed only by the cycle collector (which the service
        # holds off with gc.freeze, so each reload would keep the old vocabulary).
        index, learned, buckets = self._index, len(self.ngrams), num_buckets

        def trigram_ids(word: str) -> tuple[int, ...]:
            return tuple(_ngram_id(index, learned, buckets, g) for g in letter_trigrams(word))

        self._word_ids = functools.lru_cache(maxsize=WORD_CACHE_MAX)(trigram_ids)

    def __len__(self) -> int:
        """Total number of ids (embedding rows): learned n-grams plus hash buckets."""
        return len(self.ngrams) + self.num_buckets

    def id(self, ngram: str) -> int:
        return _ngram_id(self._index, len(self.ngrams), self.num_buckets, ngram)

    def words(self, text: str) -> list[str]:
        """The words of ``text`` the model reads: ``split_words`` without the stop words, unless the text
        is nothing but stop words ("to be or not to be"), which is then read whole rather than as nothing."""
        words = split_words(text)
        if not self.stopwords:
            return words
        kept = [w for w in words if w not in self.stopwords]
        return kept or words

    def encode(self, text: str, max_words: int | None = None) -> list[list[int]]:
        """Word → n-gram ids of one text (its words as ``words`` reads them), cut to the first ``max_words``."""
        words = self.words(text)
        if max_words is not None:
            words = words[:max_words]
        out = []
        for i, w in enumerate(words):
            if _is_cjk_char(w):
                out.append([self.id(g) for g in _cjk_grams(words, i)])
            else:  # a list of its own: callers may change what they are given
                ids = self._word_ids if len(w) <= CACHED_WORD_CHARS else self._word_ids.__wrapped__  # uncached
                out.append(list(ids(w)))
        return out

    def featurize(self, texts: Sequence[str], max_words: int | None = None) -> list[list[list[int]]]:
        """text → word → n-gram ids, for a batch of texts."""
        return [self.encode(t, max_words) for t in texts]

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        size: int = 40_000,
        num_buckets: int = 20_000,
        lang: str = "en",
        min_count: int = 2,
        stopwords: Iterable[str] = (),
    ) -> Vocab:
        """The ``size`` most frequent n-grams (seen at least ``min_count`` times) of ``texts`` as the
        vocabulary reads them (without ``stopwords``).

        Ties are broken by the n-gram itself so the vocabulary is deterministic for given texts.
        """
        empty = cls([], num_buckets=num_buckets, lang=lang, stopwords=stopwords)
        counts: Counter[str] = Counter()
        for t in texts:
            for grams in word_ngrams(empty.words(t)):
                counts.update(grams)
        ranked = sorted((g for g, c in counts.items() if c >= min_count), key=lambda g: (-counts[g], g))
        return cls(ranked[:size], num_buckets=num_buckets, lang=lang, stopwords=stopwords)

    def to_dict(self) -> dict:
        d = {
            "format": VOCAB_FORMAT,
            "version": VOCAB_VERSION,
            "lang": self.lang,
            "num_buckets": self.num_buckets,
            "hash": "crc32",
        }
        if self.stopwords:  # absent (a vocabulary of every word) in the files of models before the option
            d["stopwords"] = sorted(self.stopwords)
        return {**d, "ngrams": self.ngrams}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        if d.get("format") != VOCAB_FORMAT:
            raise ValueError(f"not a vocabulary file (format={d.get('format')!r})")
        if d.get("version") != VOCAB_VERSION:
            raise ValueError(f"unsupported vocabulary version {d.get('version')!r} (expected {VOCAB_VERSION})")
        stop = d.get("stopwords", [])
        if not isinstance(stop, list) or not all(isinstance(w, str) for w in stop):
            raise ValueError("vocabulary file: stopwords must be a list of strings")
        return cls(d["ngrams"], num_buckets=int(d["num_buckets"]), lang=d.get("lang", "en"), stopwords=stop)

    def save(self, path: str | os.PathLike) -> None:
        # One n-gram a line keeps the file readable and diffable.
        d = self.to_dict()
        head = json.dumps({k: v for k, v in d.items() if k != "ngrams"}, ensure_ascii=False)[:-1]
        body = ",\n".join(json.dumps(g, ensure_ascii=False) for g in d["ngrams"])
        Path(path).write_text(f'{head}, "ngrams": [\n{body}\n]}}\n', encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
