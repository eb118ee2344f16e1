"""BM25 as a training-time teacher (``--lexical-distill``): the lexical scores of every in-batch
candidate, for the student to learn as a distribution.

Where BM25 beats the dense side (Chinese search queries, real consumer questions) the reason is exact
term overlap over the *whole* corpus: a rare entity or character pair in the query singles out the
documents that hold it. The DSSM loss sees one labelled positive per query; BM25's scores over the other
127 candidates say which of them share the query's terms, and how rarely those terms occur. A dense
model trained to imitate BM25 learns much of that lexical matching (SPAR's Λ, Chen et al., 2022); here
it is a second KL term beside the DSSM loss, on the same candidates, and costs one sparse product a
step: no model, no extra install, nothing to cache.

The scores are BM25 with bm25s's defaults (Lucene's idf, k1 1.5, b 0.75) over the texts the index's
BM25 reads (``index.lexical.tokenize``), so the teacher is the lexical side the service fuses with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from index.lexical import english_stemmer, tokenize


class LexicalTeacher:
    """BM25 term weights of a corpus as a sparse (n_docs, V) matrix W: the score of query q against
    document d is Σ_{t ∈ q} W[d, t], so a batch's (B, N) score table is one sparse product."""

    def __init__(self, doc_texts: Sequence[str], lang: str, k1: float = 1.5, b: float = 0.75) -> None:
        self.lang = lang
        self._stemmer = english_stemmer() if lang == "en" else None  # one for every step's queries
        docs = tokenize(doc_texts, lang, self._stemmer)
        self.terms: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        lengths = np.array([len(t) for t in docs], dtype=np.float64)
        for i, toks in enumerate(docs):
            for term, count in Counter(toks).items():
                rows.append(i)
                cols.append(self.terms.setdefault(term, len(self.terms)))
                tfs.append(count)
        n = len(docs)
        tf = np.asarray(tfs, dtype=np.float64)
        col = np.asarray(cols, dtype=np.int64)
        df = np.bincount(col, minlength=len(self.terms)).astype(np.float64)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))  # Lucene's (never negative)
        avg = max(float(lengths.mean()) if n else 1.0, 1e-9)
        length_norm = k1 * (1.0 - b + b * lengths[np.asarray(rows, dtype=np.int64)] / avg)
        w = idf[col] * tf / (tf + length_norm)
        self.weights = sp.csr_matrix((w.astype(np.float32), (rows, cols)), shape=(n, max(len(self.terms), 1)))

    def query_terms(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's corpus term ids, one per occurrence as bm25s scores them (a repeated term counts
        again; terms the corpus lacks score nothing)."""
        return [np.array([self.terms[t] for t in toks if t in self.terms], dtype=np.int64)
                for toks in tokenize(texts, self.lang, self._stemmer)]

    def scores(self, query_terms: Sequence[np.ndarray], cands: Sequence[int]) -> Tensor:
        """(B, N) BM25 scores of B queries (as ``query_terms`` gives them) against N corpus documents."""
        indptr = np.zeros(len(query_terms) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(t) for t in query_terms])
        idx = np.concatenate(list(query_terms)) if len(query_terms) else np.zeros(0, dtype=np.int64)
        # Repeated ids in a row are summed by the product: a term's weight once per occurrence.
        q = sp.csr_matrix((np.ones(len(idx), dtype=np.float32), idx, indptr), shape=(len(query_terms), self.weights.shape[1]))
        s = (q @ self.weights[np.asarray(cands, dtype=np.int64)].T).toarray()  # (B, N)
        return torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32))


def lexical_targets(scores: Tensor) -> tuple[Tensor, Tensor]:
    """(B, N) BM25 scores → (scores scaled so each query's best candidate is 1, rows that score anything).

    BM25's scale grows with the query's length and its terms' rarity; dividing by the row's maximum makes
    one temperature fit short and long queries alike. A query sharing no term with any candidate has no
    lexical opinion, and its row is left out rather than taught a uniform distribution."""
    top = scores.max(dim=1).values  # (B,)
    keep = top > 0
    return scores / top.clamp_min(1e-9).unsqueeze(1), keep

