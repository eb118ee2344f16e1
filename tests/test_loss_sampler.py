import math

import torch

from models.loss import dssm_loss
from models.sampler import NegativeSampler


def test_loss_hand_computed():
    q = torch.tensor([[1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # cos 1 with the positive, 0 with the negative
    gamma = 2.0
    want = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0)))
    assert abs(dssm_loss(q, d, gamma).item() - want) < 1e-6


def test_loss_excludes_other_relevant_documents():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    exclude = torch.tensor([[False, False, True], [False, False, False]])
    got = dssm_loss(q, d, 1.0, exclude).item()
    e = math.e
    l0 = -math.log(e / (e + 1))  # candidate 2 (a copy of the positive) is excluded for query 0
    l1 = -math.log(e / (e + 1 + 1))
    assert abs(got - (l0 + l1) / 2) < 1e-6
    # the diagonal is never excluded even if marked
    exclude[0, 0] = True
    assert abs(dssm_loss(q, d, 1.0, exclude).item() - got) < 1e-6


def test_sampler_never_returns_relevant():
    relevant = [{0, 1, 2}, {5}, set(range(9))]
    hard = [[0, 1, 3, 4], [5, 6], [0, 9]]
    s = NegativeSampler(10, relevant, hard=hard, hard_fraction=0.7, seed=1)
    for _ in range(500):
        for q in range(3):
            negs = s.sample(q, 4)
            assert len(negs) == 4 and not set(negs) & relevant[q]
    assert NegativeSampler(3, [{0, 1, 2}]).sample(0, 4) == []


def test_distill_kl_hand_computed():
    from models.loss import distill_kl

    s = torch.tensor([[0.5, 0.0, -0.5]])  # student cosines of one query with 3 candidates
    t = torch.tensor([[0.9, 0.8, 0.1]])  # teacher cosines
    gamma, tau = 2.0, 0.5
    ps = [math.exp(gamma * x) for x in s[0].tolist()]
    pt = [math.exp(x / tau) for x in t[0].tolist()]
    ps = [x / sum(ps) for x in ps]
    pt = [x / sum(pt) for x in pt]
    want = sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True))
    assert abs(distill_kl(s, t, gamma, tau).item() - want) < 1e-6
    # equal distributions: zero; and KL is never negative
    assert abs(distill_kl(t * (1 / tau) / gamma, t, gamma, tau).item()) < 1e-6
    assert distill_kl(torch.randn(4, 6), torch.randn(4, 6), 3.0, 0.2).item() >= 0


def test_distill_kl_drops_excluded_candidates_from_both_sides():
    from models.loss import distill_kl

    s = torch.tensor([[0.5, 0.0, -0.5]])
    t = torch.tensor([[0.9, 0.8, 0.1]])
    exclude = torch.tensor([[False, True, False]])
    got = distill_kl(s, t, 2.0, 0.5, exclude).item()
    want = distill_kl(s[:, [0, 2]], t[:, [0, 2]], 2.0, 0.5).item()
    assert abs(got - want) < 1e-6 and math.isfinite(got)
    exclude[0, 0] = True  # the diagonal (the labelled positive) always stays
    assert abs(distill_kl(s, t, 2.0, 0.5, exclude).item() - got) < 1e-6


def test_distill_kl_gradient_moves_student_towards_teacher():
    from models.loss import distill_kl

    s = torch.zeros(1, 3, requires_grad=True)
    t = torch.tensor([[0.9, 0.1, 0.1]])
    distill_kl(s, t, 1.0, 0.1).backward()
    assert s.grad[0, 0] < 0 and s.grad[0, 1] > 0  # descent raises the teacher's favourite, lowers the others


def test_distill_kl_rows_averages_over_the_chosen_queries_only():
    from models.loss import distill_kl

    s, t = torch.randn(3, 4), torch.randn(3, 4)
    exclude = torch.zeros(3, 4, dtype=torch.bool)
    exclude[2, 0] = True  # query 2's other relevant document, column 0
    rows = torch.tensor([True, False, True])
    q0 = distill_kl(s[0:1], t[0:1], 2.0, 0.5).item()
    # query 2 on its own (diagonal at column 2, column 0 dropped from both sides)
    q2 = distill_kl(s[2:3, [1, 2, 3]], t[2:3, [1, 2, 3]], 2.0, 0.5).item()
    got = distill_kl(s, t, 2.0, 0.5, exclude, rows=rows).item()
    assert abs(got - (q0 + q2) / 2) < 1e-6
    assert distill_kl(s, t, 2.0, 0.5, rows=torch.zeros(3, dtype=torch.bool)).item() == 0.0
