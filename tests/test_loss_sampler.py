import math

import pytest
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


def _geometry_by_hand(s: torch.Tensor, t: torch.Tensor, gamma: float, tau: float, ids: list[int]) -> float:
    """Mean over items with another text of KL(teacher ‖ student) over the items that are other texts."""
    kls = []
    for i in range(len(ids)):
        others = [j for j in range(len(ids)) if ids[j] != ids[i]]
        if not others:
            continue
        ps = [math.exp(gamma * float(s[i] @ s[j])) for j in others]
        pt = [math.exp(float(t[i] @ t[j]) / tau) for j in others]
        ps = [x / sum(ps) for x in ps]
        pt = [x / sum(pt) for x in pt]
        kls.append(sum(a * math.log(a / b) for a, b in zip(pt, ps, strict=True)))
    return sum(kls) / len(kls) if kls else 0.0


@pytest.mark.parametrize("ids", [[0, 1, 2], [7, 7, 2, 9], [5, 5]])
def test_geometry_kl_hand_computed_over_each_items_other_texts(ids):
    """Distinct texts; a document sampled twice (its copy is no neighbour of it); no text with another."""
    from models.loss import geometry_kl

    torch.manual_seed(len(ids))
    base_s = torch.nn.functional.normalize(torch.randn(10, 3), dim=1)
    base_t = torch.nn.functional.normalize(torch.randn(10, 5), dim=1)
    s, t = base_s[ids], base_t[ids]  # a copy has its original's vectors
    idt = torch.tensor(ids)
    got = geometry_kl(s, t, 3.0, 0.2, idt[:, None] == idt[None, :]).item()
    assert math.isfinite(got) and abs(got - _geometry_by_hand(s, t, 3.0, 0.2, ids)) < 1e-5
    # a student with the teacher's own geometry (γ = 1/τ) has nothing to learn
    assert abs(geometry_kl(t, t, 1 / 0.2, 0.2, idt[:, None] == idt[None, :]).item()) < 1e-5


def test_geometry_kl_gradient_pulls_the_teachers_neighbours_together():
    from models.loss import geometry_kl

    base = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    s = base.clone().requires_grad_(True)
    t = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [-1.0, 0.0]]), dim=1)  # 0 and 1 alike
    geometry_kl(s, t, 1.0, 0.1, torch.eye(3, dtype=torch.bool)).backward()
    # descent moves item 0 towards item 1 (and item 1 towards item 0)
    assert float(-s.grad[0] @ base[1]) > 0 and float(-s.grad[1] @ base[0]) > 0


def test_swap_to_label_puts_the_labelled_document_first_and_keeps_the_rest():
    from models.loss import swap_to_label

    t = torch.tensor([[0.1, 0.5, 0.3, 0.2],  # the teacher prefers candidate 1 to query 0's label
                      [0.2, 0.9, 0.4, 0.0],  # already right: untouched
                      [0.7, 0.6, 0.1, 0.8]])  # prefers 3 to 2
    got = swap_to_label(t)
    assert torch.equal(got, torch.tensor([[0.5, 0.1, 0.3, 0.2], [0.2, 0.9, 0.4, 0.0], [0.7, 0.6, 0.8, 0.1]]))
    assert torch.equal(got.argmax(dim=1), torch.arange(3))
    assert torch.equal(got.sort(dim=1).values, t.sort(dim=1).values)  # the same scores, two moved a row
    assert torch.equal(t[0], torch.tensor([0.1, 0.5, 0.3, 0.2]))  # the input is not written to
    # another document relevant to query 0 (candidate 1, excluded) cannot be its top: the next one is
    exclude = torch.tensor([[False, True, False, False], [False] * 4, [False] * 4])
    assert torch.equal(swap_to_label(t, exclude)[0], torch.tensor([0.3, 0.5, 0.1, 0.2]))
    # ...and where only an excluded candidate is above the label, the row stays as it is
    exclude[0] = torch.tensor([False, True, True, False])
    assert torch.equal(swap_to_label(torch.tensor([[0.4, 0.5, 0.6, 0.2]]), exclude[:1])[0], torch.tensor([0.4, 0.5, 0.6, 0.2]))
    tie = torch.tensor([[0.5, 0.5, 0.1]])  # a tie with the label: the same scores either way
    assert torch.equal(swap_to_label(tie), tie)
