"""Where a training step's time and memory go: activation bytes saved for backward, the time share of
each part of a CPU step (``torch.profiler``), and the Amdahl ceiling of a conv-only speedup."""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["activation_bytes", "breakdown", "amdahl_ceiling", "PARTS"]


def activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for backward in one training forward pass of ``x``."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


PARTS = ("conv_kxk", "conv_1x1", "conv_depthwise", "batchnorm", "relu", "add", "optimizer", "other")
"""The parts of a training step in a breakdown (``conv`` is added as the sum of the three conv parts)."""

_PART_OF_OP = {
    "aten::conv2d": "conv",
    "aten::convolution": "conv",
    "aten::convolution_backward": "conv",
    "aten::batch_norm": "batchnorm",
    "aten::native_batch_norm": "batchnorm",
    "aten::native_batch_norm_backward": "batchnorm",
    "aten::relu": "relu",
    "aten::relu_": "relu",
    "aten::threshold_backward": "relu",
    "aten::add": "add",
    "aten::add_": "add",
    "Optimizer.step#SGD.step": "optimizer",
    "Optimizer.zero_grad#SGD.zero_grad": "optimizer",
}
"""Profiler event name -> part. Only the outermost matching event of a call stack is counted."""


def _conv_kind(event) -> str:
    """``conv_1x1``, ``conv_kxk`` or ``conv_depthwise`` from a conv event's recorded input shapes.

    ``aten::conv2d``/``aten::convolution`` take ``(input, weight, ...)``,
    ``aten::convolution_backward`` takes ``(grad_output, input, weight, ...)``; weight
    ``(C_out, C_in / groups, k_h, k_w)``."""
    shapes = event.input_shapes
    i = 1 if event.name == "aten::convolution_backward" else 0
    inp, weight = shapes[i], shapes[i + 1]
    if len(weight) == 4 and len(inp) == 4 and weight[1] < inp[1]:
        return "conv_depthwise"
    return "conv_1x1" if list(weight[2:]) == [1, 1] else "conv_kxk"


def _outermost(event) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in _PART_OF_OP:
            return False
        parent = parent.cpu_parent
    return True


def breakdown(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 5) -> dict[str, float]:
    """Share of a CPU training step's time per part (the parts of :data:`PARTS` sum to 1).

    Each step (forward, cross-entropy, backward, SGD step) runs under ``torch.profiler``; the
    inclusive CPU time of every outermost operator named in ``_PART_OF_OP`` is added to its part.
    Shares are the median of each part over ``steps`` profiled steps divided by the median step
    wall time (``other``: the remainder: pooling, loss, copies, autograd bookkeeping, profiler
    overhead). Medians, because the memory-bound parts (batch norm, ReLU, additions) slow down
    by up to 2-3x for a step or two when other work shares the machine's memory bandwidth. One
    unprofiled step comes first. On CUDA, operator CPU times are launch times, so this breakdown
    is only meaningful on the CPU.
    """
    from torch.profiler import ProfilerActivity, profile

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    per_step: list[dict[str, float]] = []
    totals: list[float] = []
    for _ in range(steps):
        parts = dict.fromkeys(PARTS[:-1], 0.0)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t0 = time.perf_counter()
            step()
            totals.append(time.perf_counter() - t0)
        for ev in prof.events():
            part = _PART_OF_OP.get(ev.name)
            if part is None or not _outermost(ev):
                continue
            if part == "conv":
                part = _conv_kind(ev)
            parts[part] += ev.cpu_time_total * 1e-6  # µs -> s
        per_step.append(parts)
    medians = {k: statistics.median(p[k] for p in per_step) for k in PARTS[:-1]}
    total = max(statistics.median(totals), sum(medians.values()))
    shares = {k: v / total for k, v in medians.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))  # when the parts fill the step, 1 - sum rounds to ~-1e-16
    shares["conv"] = shares["conv_kxk"] + shares["conv_1x1"] + shares["conv_depthwise"]
    return shares


def amdahl_ceiling(dense_breakdown: dict[str, float] | None, macs_ratio: float) -> float | None:
    """Speedup of the dense step if only its convolutions (share ``dense_breakdown["conv"]`` of the
    step) ran ``macs_ratio`` times faster: ``1 / ((1 - share) + share / macs_ratio)``; ``None``
    without a breakdown (CUDA), never NaN."""
    if not dense_breakdown:
        return None
    share = dense_breakdown["conv"]
    return 1.0 / ((1 - share) + share / macs_ratio)
