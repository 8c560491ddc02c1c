"""Where a CPU training step's time goes: the profiler's time of each top-level operator, summed per
part, parts that add up to the step (:func:`breakdown`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator

__all__ = ["breakdown", "PARTS", "CONV_PARTS"]

CONV_PARTS = ("conv_kxk", "conv_1x1", "conv_depthwise")
"""The convolution parts of a breakdown, by kernel (their sum is the breakdown's ``conv``)."""

PARTS = (*CONV_PARTS, "batchnorm", "relu", "add", "layout", "loss", "optimizer", "other")
"""The parts of a training step in a breakdown; they sum to the step. ``layout``: memory-format
conversions and copies (``contiguous``, ``clone``, ``copy_``, ``to``); ``loss``: cross-entropy
forward and backward; ``optimizer``: gradient accumulation and the SGD step; ``other``: everything
else (pooling, the classifier, shortcuts, autograd and Python bookkeeping, profiler overhead).
Records made before the ``layout`` and ``loss`` parts existed counted both in ``other``."""

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
    "aten::contiguous": "layout",
    "aten::clone": "layout",
    "aten::copy_": "layout",
    "aten::to": "layout",
    "aten::_to_copy": "layout",
    "aten::cross_entropy_loss": "loss",
    "aten::log_softmax": "loss",
    "aten::_log_softmax_backward_data": "loss",
    "aten::nll_loss_nd": "loss",
    "aten::nll_loss_backward": "loss",
    "torch::autograd::AccumulateGrad": "optimizer",
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


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the block: the profiler's C++ start/stop lines never reach the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiled(step: Callable[[], object]) -> tuple[list, float]:
    """The profiler events of one call of ``step`` and its wall seconds; the profiler's own start and
    stop are silenced, the step's messages are not."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
    with _silenced_stderr():
        prof.__enter__()
    try:
        t0 = time.perf_counter()
        step()
        wall = time.perf_counter() - t0
    finally:
        with _silenced_stderr():
            prof.__exit__(None, None, None)
    return list(prof.events()), wall


def _parts(events: list) -> dict[str, float]:
    """Seconds per part (every part of :data:`PARTS` but ``other``) of one profiled step."""
    parts = dict.fromkeys(PARTS[:-1], 0.0)
    for ev in events:
        part = _PART_OF_OP.get(ev.name)
        if part is None or not _outermost(ev):
            continue
        if part == "conv":
            part = _conv_kind(ev)
        parts[part] += ev.cpu_time_total * 1e-6  # µs -> s
    return parts


def breakdown(step: Callable[[], object], steps: int = 5) -> dict[str, float]:
    """Share of a CPU training step's time per part of :data:`PARTS`, summing to 1, and ``conv`` (the
    sum of :data:`CONV_PARTS`).

    ``step`` runs one training step as it is timed (:meth:`elrt_core.bench.Stepper.train_step`); one
    unprofiled call comes first, then ``steps`` profiled ones. In each, the inclusive time of every
    outermost operator named in ``_PART_OF_OP`` is added to its part; the operators run one after
    another on the calling thread, so the parts fit in the step's wall time and ``other`` is the rest.
    Shares are each part's total over the profiled steps divided by their total wall time, so they
    add up to 1 exactly; multiplied by a step time they give parts that add up to that step. On CUDA,
    operator CPU times are launch times, so this breakdown is only meaningful on the CPU.
    """
    step()
    totals = dict.fromkeys(PARTS[:-1], 0.0)
    wall = 0.0
    for _ in range(steps):
        events, seconds = _profiled(step)
        for k, v in _parts(events).items():
            totals[k] += v
        wall += seconds
    total = max(wall, sum(totals.values()))  # timer granularity can put the parts a microsecond past the wall
    shares = {k: v / total for k, v in totals.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))  # 1 - sum can round to -1e-16
    shares["conv"] = sum(shares[k] for k in CONV_PARTS)
    return shares
