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
