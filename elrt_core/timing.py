"""Wall-clock timing of one step: the harness of ``elrt bench`` and of :func:`elrt_core.lowrank.autotune`.

A step is timed from a synchronized start to a synchronized end (on CUDA, kernels run asynchronously,
so both ends wait for the device), and several steps are summarized by their median, which a few
slow steps on a shared machine do not move. :func:`timed_turns` times several steps alternately, so
slow drifts of the machine (other processes, thermal state) affect all of them alike, and round ``i``
of one step pairs with round ``i`` of another (:func:`elrt_core.study.stats.ratio_interval`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["sync", "seconds", "layer_step", "timed_turns", "in_turns", "median_seconds"]


def sync(device: torch.device) -> None:
    """Wait for every queued kernel of ``device`` (CUDA); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(step: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call of ``step``, synchronized on ``device`` at both ends."""
    sync(device)
    t0 = time.perf_counter()
    step()
    sync(device)
    return time.perf_counter() - t0


def layer_step(layer: nn.Module, x: torch.Tensor, train: bool = True) -> float:
    """Seconds of one forward + backward of ``layer`` on ``x`` (``train``; the gradient of the output
    sum, with respect to the parameters and to ``x``), or of one forward pass without autograd."""
    if not train:
        with torch.no_grad():
            return seconds(lambda: layer(x), x.device)
    xi = x.detach().requires_grad_(True)
    return seconds(lambda: layer(xi).sum().backward(), x.device)


def median_seconds(step: Callable[[], float], repeats: int, warmup: int = 1) -> float:
    """Median of ``repeats`` calls of ``step`` (each returns its seconds) after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    return statistics.median(step() for _ in range(repeats))


def timed_turns(steps: Sequence[Callable[[], float]], repeats: int, warmup: int) -> list[list[float]]:
    """Seconds of each of ``steps`` (each call returns its seconds) per timed round, called in turns:
    ``warmup`` untimed rounds, then ``repeats`` timed rounds of one call of each. Shape: ``len(steps)``
    lists of ``repeats`` seconds, round ``i`` at index ``i`` in each."""
    times: list[list[float]] = [[] for _ in steps]
    for i in range(warmup + repeats):
        for k, step in enumerate(steps):
            t = step()
            if i >= warmup:
                times[k].append(t)
    return times


def in_turns(steps: Sequence[Callable[[], float]], repeats: int, warmup: int) -> list[float]:
    """Median seconds of each of ``steps`` over the timed rounds of :func:`timed_turns`."""
    return [statistics.median(t) for t in timed_turns(steps, repeats, warmup)]
