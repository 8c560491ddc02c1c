"""Making low-rank layers fast without changing their function: per-layer choice of computation.

Every :class:`~elrt_core.lowrank.layers.LowRankConv2d` can compute the same function in several
ways (its ``IMPLS``: the factored chain, one conv with the reconstructed kernel, and for Tucker-2
the core with one factor folded in). Which is fastest depends on the layer's shape, the batch, the
device and its convolution library, so :func:`autotune` measures each way on the layer's real
input and keeps the fastest. Parameters, gradients' targets and the model's function are unchanged.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from ..timing import layer_step, median_seconds
from .layers import LowRankConv2d

__all__ = ["autotune", "set_impl"]


def autotune(
    model: nn.Module, example: torch.Tensor, *, train: bool = True, repeats: int = 3
) -> dict[str, tuple[str, dict[str, float]]]:
    """Set every low-rank layer of ``model`` to its fastest computation for inputs like ``example``.

    ``example``: a batch ``(N, C, H, W)`` on the model's device and memory format. ``train``:
    time forward + backward (training) or forward only (inference). Returns
    ``{layer name: (chosen impl, {impl: median seconds})}``. Only the low-rank layers run while
    timing (batch-norm statistics are untouched); gradients accumulated while timing are cleared.
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, LowRankConv2d)}
    inputs: dict[str, torch.Tensor] = {}

    def keep(name: str, inp: tuple[torch.Tensor, ...]) -> None:
        inputs[name] = inp[0].detach()

    handles = [m.register_forward_hook(lambda mod, i, o, n=n: keep(n, i)) for n, m in layers.items()]
    was_training = model.training
    try:
        model.eval()  # capture the inputs without touching batch-norm statistics
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    chosen = {}
    for name, layer in layers.items():
        timings = {}
        for impl in type(layer).IMPLS:
            layer.set_impl(impl)
            timings[impl] = median_seconds(partial(layer_step, layer, inputs[name], train), repeats)
        best = min(timings, key=timings.get)
        layer.set_impl(best)
        chosen[name] = (best, timings)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return chosen


def set_impl(model: nn.Module, impl: str | dict[str, str]) -> None:
    """Set one computation for every low-rank layer, or per layer from ``{name: impl}``."""
    for name, m in model.named_modules():
        if isinstance(m, LowRankConv2d):
            m.set_impl(impl if isinstance(impl, str) else impl.get(name, "factored"))
