"""The lexical side: BM25 (bm25s) with the tokenisation of the reference figures, in one place: English
with English stopwords and the Snowball stemmer; Chinese as every character plus every overlapping
two-character window. Used by the index build, the served index, evaluation and hard-negative mining."""

from __future__ import annotations

import os
from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer

from models.featurizer import normalize

from .errors import IndexLoadError

TOKENIZERS = {
    "en": "bm25s.tokenize(stopwords='en', stemmer=Stemmer('english'))",
    "zh": "every character + every overlapping two-character window",
}


def zh_tokens(text: str) -> list[str]:
    chars = [c for c in normalize(text) if not c.isspace()]
    return chars + [a + b for a, b in zip(chars, chars[1:], strict=False)]


def tokenize(texts: Sequence[str], lang: str, stemmer: object | None = None) -> list[list[str]]:
    """Each text's terms as BM25 sees them, for documents and queries alike: English through bm25s
    (its regex, English stopwords, the Snowball stemmer), Chinese as characters + bigrams."""
    if lang == "en":
        stemmer = stemmer or english_stemmer()
        return [list(t) for t in bm25s.tokenize(
            list(texts), stopwords="en", stemmer=stemmer, show_progress=False, return_ids=False
        )]
    return [zh_tokens(t) for t in texts]


def english_stemmer() -> object:
    """The Snowball stemmer of the English tokenisation (build one and pass it to ``tokenize`` per batch)."""
    return Stemmer.Stemmer("english")


class BM25:
    """A bm25s ``BM25()`` index (default parameters) over texts, tokenised for ``lang``."""

    def __init__(self, lang: str = "en") -> None:
        self.lang = lang
        self.model = bm25s.BM25()
        self._stemmer = english_stemmer() if lang == "en" else None

    def _tokenize(self, texts: Sequence[str]) -> object:
        if self.lang == "en":
            return bm25s.tokenize(list(texts), stopwords="en", stemmer=self._stemmer, show_progress=False)
        # Chinese: our own tokens, given to bm25s as lists of strings.
        return [zh_tokens(t) for t in texts]

    def index(self, texts: Sequence[str]) -> BM25:
        self.model.index(self._tokenize(texts), show_progress=False)
        self.num_docs = len(texts)
        return self

    def query_tokens(self, queries: Sequence[str]) -> list[list[str]]:
        """The query's terms as the index sees them (stopwords dropped and stemmed; CJK chars + bigrams)."""
        return tokenize(queries, self.lang, self._stemmer)

    def query_stats(self, tokens: Sequence[list[str]]) -> list[tuple[int, float]]:
        """Per query's terms (:meth:`query_tokens`): (number of terms, share of them that occur in the
        corpus), signals of how well the lexical side can match it (the adaptive fusion's ``qlen`` and
        ``known`` features)."""
        vocab = self.model.vocab_dict
        out = []
        for toks in tokens:
            n = len(toks)
            out.append((n, sum(t in vocab for t in toks) / n if n else 0.0))
        return out

    def search(self, queries: Sequence[str], k: int, tokens: Sequence[list[str]] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(Q, k) document indices and scores, best first; k is cut to the corpus size. ``tokens``: the
        queries' :meth:`query_tokens` when the caller has them already (tokenised once per request)."""
        k = min(k, self.num_docs)
        # Unknown words simply match nothing.
        tok = list(tokens) if tokens is not None else self.query_tokens(queries)
        # A query left with no known token would make bm25s fail: give it a token that matches nothing.
        tok = [t if t else ["\x00"] for t in tok]
        docs, scores = self.model.retrieve(tok, k=k, show_progress=False, n_threads=1)
        return np.asarray(docs), np.asarray(scores)

    def save(self, path: str | os.PathLike) -> None:
        self.model.save(str(path))

    @classmethod
    def load(cls, path: str | os.PathLike, lang: str, count: int | None = None, mmap: bool = True) -> BM25:
        """Open a saved index; memory-mapped by default, so a service does not hold the score matrix in
        RAM. ``count``: the number of documents it must hold (checked)."""
        b = cls(lang)
        try:
            b.model = bm25s.BM25.load(str(path), mmap=mmap)
            b.num_docs = int(b.model.scores["num_docs"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise IndexLoadError(f"{path}: cannot read the BM25 index ({e})") from e
        if count is not None and b.num_docs != count:
            raise IndexLoadError(f"{path}: BM25 index holds {b.num_docs} documents, manifest says {count}")
        return b
