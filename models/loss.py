"""The DSSM objective: softmax over γ·cos(q, d) of the relevant document against negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def other_relevant(exclude: Tensor) -> Tensor:
    """``exclude`` (B, N) without its diagonal: candidate j is relevant to query i and is not i's own
    labelled positive (column i), so it is neither a negative nor a target of query i."""
    B = exclude.shape[0]
    out = exclude.clone()
    out[torch.arange(B), torch.arange(B)] = False
    return out


def dssm_loss(q: Tensor, d: Tensor, gamma: Tensor | float, exclude: Tensor | None = None) -> Tensor:
    """Mean of −log P(d⁺ | q) with P = softmax over candidates of γ·cos(q, d).

    q (B, D) and d (N, D) are unit vectors; d[i] is query i's relevant document for i < B, the rest
    (in-batch positives of other queries and sampled negatives) are its negatives. ``exclude`` (B, N)
    marks candidates that must not count as negatives of query i (another document relevant to it, or
    the same document sampled twice); the diagonal is never excluded.
    """
    B = q.shape[0]
    logits = gamma * (q @ d.t())  # (B, N)
    if exclude is not None:
        logits = logits.masked_fill(other_relevant(exclude), float("-inf"))
    return F.cross_entropy(logits, torch.arange(B))


def distill_kl(
    student_cos: Tensor, teacher_cos: Tensor, gamma: Tensor | float, tau: float, exclude: Tensor | None = None,
    rows: Tensor | None = None,
) -> Tensor:
    """Mean over queries of KL(p_teacher ‖ p_student) over each query's candidates.

    student_cos, teacher_cos: (B, N) cosines of query i with candidate j, from the student's and the
    teacher's own vectors. p_student = softmax_j(γ·student_cos): the distribution the DSSM loss trains,
    so the two losses shape the same scores; p_teacher = softmax_j(teacher_cos / τ). The teacher ranks
    *every* candidate, not only the one labelled positive, which is what carries its knowledge of
    paraphrase and topic to the student (Hinton et al., 2015; over in-batch candidates as in
    Hofstätter et al., 2020). ``exclude`` (B, N) drops candidates from both distributions (another
    document relevant to query i); the diagonal (the labelled positive) always stays. ``rows`` (B,) bool:
    average over these queries only (a teacher with no opinion on the others).
    """
    s = gamma * student_cos
    t = teacher_cos / tau
    if exclude is not None:
        others = other_relevant(exclude)
        s = s.masked_fill(others, float("-inf"))
        t = t.masked_fill(others, float("-inf"))
    per_query = _row_kl(s, t)  # (B,)
    if rows is None:
        return per_query.mean()
    return per_query[rows].sum() / rows.sum().clamp_min(1)


def swap_to_label(teacher_cos: Tensor, exclude: Tensor | None = None) -> Tensor:
    """teacher_cos (B, N) with, in each row i whose top candidate is not the labelled positive (column i),
    the two scores swapped (knowledge adjustment, Wen et al., 2019).

    The teacher then agrees with the label on which document comes first, and still ranks every other
    candidate as it did: its sense of what is near (paraphrase, topic) stays, while its mistakes on the
    training pairs no longer pull the student away from the label, which the DSSM term pulls towards.
    Candidates ``exclude`` marks (another document relevant to query i) cannot be a row's top.
    """
    B = teacher_cos.shape[0]
    rows = torch.arange(B)
    ranked = teacher_cos if exclude is None else teacher_cos.masked_fill(other_relevant(exclude), float("-inf"))
    top = ranked.argmax(dim=1)  # (B,)
    out = teacher_cos.clone()
    out[rows, top] = teacher_cos[rows, rows]
    out[rows, rows] = teacher_cos[rows, top]  # where top == i both writes leave the row as it was
    return out


def geometry_kl(student: Tensor, teacher: Tensor, gamma: Tensor | float, tau: float, same: Tensor) -> Tensor:
    """Mean over items of KL(p_teacher ‖ p_student) over the *other* items of one side of a batch.

    student (M, D) and teacher (M, Dt): unit vectors of the same M texts (the batch's documents, or its
    queries) by each model; same (M, M) bool: pairs that are one item (the diagonal, a document sampled
    twice, one question's two pairs: equal corpus indices or teacher rows), no neighbours of each other.
    p_student = softmax_j(γ·cos_s(i, j)), p_teacher = softmax_j(cos_t(i, j) / τ): the teacher's sense of
    which texts are alike, item by item (relational distillation, Park et al., 2019), where
    ``distill_kl`` carries only its ranking of documents for a query. Every document of the batch is a
    row here, so the tower learns the teacher's neighbourhoods on natural text too, not only on the
    training questions' templates. Items with no other text are left out of the mean.
    """
    s = (gamma * (student @ student.t())).masked_fill(same, float("-inf"))  # (M, M)
    t = (teacher @ teacher.t() / tau).masked_fill(same, float("-inf"))  # (M, M)
    rows = ~same.all(dim=1)  # (M,)
    if not bool(rows.any()):
        return student.sum() * 0.0
    return _row_kl(s[rows], t[rows]).mean()


def _row_kl(s: Tensor, t: Tensor) -> Tensor:
    """(R,) KL(softmax(t) ‖ softmax(s)) row by row, for logits s, t (R, N) with −inf where masked (the same
    entries in both, and at least one finite entry a row)."""
    log_ps = F.log_softmax(s, dim=1)  # (R, N)
    log_pt = F.log_softmax(t, dim=1)  # (R, N)
    pt = log_pt.exp()
    # Masked entries have p_t = 0; their term 0·(−inf − −inf) would be NaN, so they are zeroed.
    terms = torch.where(pt > 0, pt * (log_pt - log_ps), torch.zeros_like(pt))
    return terms.sum(dim=1)
