"""The weights' moving average: its arithmetic, its swap in and out, and the trainer keeping it."""

from __future__ import annotations

import pytest
import torch

from models.config import ModelConfig
from models.data import load_beir
from models.ema import WeightAverage
from models.training import TrainConfig, Trainer
from tests.conftest import TINY_MODEL


@pytest.mark.parametrize("warmup", [10.0, 4.0])
def test_average_follows_the_exponential_rule_with_warmup(warmup: float):
    lin = torch.nn.Linear(2, 1, bias=False)
    frozen = torch.nn.Parameter(torch.ones(3), requires_grad=False)
    lin.register_parameter("frozen", frozen)
    with torch.no_grad():
        lin.weight.fill_(0.0)
    avg = WeightAverage(lin, decay=0.6, warmup=warmup)
    c = warmup  # 10 (the default): the last ninth of the steps so far; 4: the last third
    assert len(avg.shadow) == 1  # the frozen parameter is not copied
    want = 0.0
    for n, w in enumerate([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]):
        with torch.no_grad():
            lin.weight.fill_(w)
        avg.update()
        beta = min(0.6, (1 + n) / (c + n))  # with c 4 the cap 0.6 is reached at n = 4
        want = beta * want + (1 - beta) * w
        assert torch.allclose(avg.shadow[0], torch.full((1, 2), want))


def test_applied_swaps_the_average_in_and_the_live_weights_back():
    lin = torch.nn.Linear(2, 2)
    avg = WeightAverage(lin, decay=0.9, warmup=10.0)
    start = [p.detach().clone() for p in lin.parameters()]
    with torch.no_grad():
        for p in lin.parameters():
            p.add_(1.0)
    live = [p.detach().clone() for p in lin.parameters()]
    with avg.applied():
        assert all(torch.equal(p, s) for p, s in zip(lin.parameters(), start, strict=True))
    assert all(torch.equal(p, w) for p, w in zip(lin.parameters(), live, strict=True))
    with pytest.raises(RuntimeError), avg.applied():
        raise RuntimeError("an evaluation failed")
    assert all(torch.equal(p, w) for p, w in zip(lin.parameters(), live, strict=True))  # restored on error too
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="decay"):
            WeightAverage(lin, bad, 10.0)
    for bad_c in (1.0, 0.5, -3.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="warm-up"):
            WeightAverage(lin, 0.9, warmup=bad_c)


def test_trainer_evaluates_and_keeps_the_averaged_weights(tiny_beir):
    """With --ema the model kept is the average at the best epoch (not that epoch's last step's weights),
    training goes on from the live weights, and a seed still fixes the result."""
    data = load_beir(tiny_beir)

    def run(ema: float) -> tuple[Trainer, int, dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]]]:
        seen: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        holder: list[Trainer] = []

        def log(line: str) -> None:
            # Called after an epoch's evaluation, the live weights back in place: (the average that was
            # scored, the live weights training goes on from).
            avg = holder[0].average if holder else None
            if line.startswith("epoch ") and avg is not None:
                seen[int(line.split()[1].rstrip(":"))] = ([s.clone() for s in avg.shadow], [p.detach().clone() for p in avg.params])

        t = Trainer(data, ModelConfig(lang="en", **TINY_MODEL),
                    TrainConfig(epochs=3, batch_size=16, lr=5e-3, patience=100, seed=3, ema=ema, ema_warmup=4.0,
                                show_progress=False),
                    log=log)
        holder.append(t)
        return t, t.fit().best_epoch, seen

    plain, _, _ = run(0.0)
    averaged, best, seen = run(0.9)
    assert plain.average is None and averaged.average is not None and best >= 1
    assert averaged.average.warmup == 4.0  # the run's --ema-warmup reaches the average
    names = [n for n, p in averaged.model.named_parameters() if p.requires_grad]
    kept = averaged.model.state_dict()
    shadow, live = seen[best]
    assert all(torch.equal(kept[n], s) for n, s in zip(names, shadow, strict=True))
    assert any(not torch.equal(w, s) for w, s in zip(live, shadow, strict=True))  # the average, not the live weights
    again, _, _ = run(0.9)
    assert all(torch.equal(kept[k], v) for k, v in again.model.state_dict().items())
    assert any(not torch.equal(kept[k], v) for k, v in plain.model.state_dict().items())
