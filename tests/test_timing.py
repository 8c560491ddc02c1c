"""The timing harness: steps called in turns, warm-up rounds untimed, medians, one layer's step."""

import torch
from torch import nn

from elrt_core import timing


def test_in_turns_alternates_skips_the_warmup_and_takes_medians():
    calls = []

    def step(name, values):
        values = iter(values)

        def call():
            calls.append(name)
            return next(values)

        return call

    a = step("a", [100.0, 1.0, 9.0, 2.0])  # the first (warm-up) value must not count
    b = step("b", [100.0, 5.0, 4.0, 6.0])
    assert timing.in_turns([a, b], repeats=3, warmup=1) == [2.0, 5.0]
    assert calls == ["a", "b"] * 4
    a, b = step("a", [100.0, 1.0, 9.0, 2.0]), step("b", [100.0, 5.0, 4.0, 6.0])
    assert timing.timed_turns([a, b], repeats=3, warmup=1) == [[1.0, 9.0, 2.0], [5.0, 4.0, 6.0]]  # round i at index i


def test_median_seconds_discards_warmup_calls():
    values = iter([50.0, 3.0, 1.0, 2.0])
    assert timing.median_seconds(lambda: next(values), repeats=3, warmup=1) == 2.0


def test_layer_step_runs_backward_in_training_and_not_in_inference():
    layer = nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    assert timing.layer_step(layer, x, train=False) > 0 and layer.weight.grad is None
    assert timing.layer_step(layer, x) > 0 and layer.weight.grad is not None
    assert x.grad is None  # the step differentiates a detached copy of the input
