"""Exact cost accounting: multiply-accumulates (MACs) and parameters.

Unit convention of the whole study: the cost of a network is the number of multiply-accumulate
operations (MACs) of its convolution and linear layers for **one** input image. Tables write it as
"FLOPs (MACs)", as the low-rank literature does (one MAC = one multiply and one add; PyTorch's
``FlopCounterMode`` reports 2 FLOPs per MAC). Batch norm, activations, pooling and additions are
not counted. A reduction ratio is always ``dense / low-rank``.

Per-layer formulas (``k = kh * kw``, input ``H x W``, output ``H' x W'``):

* ``nn.Conv2d``: MACs ``H' W' C_out (C_in / groups) k``; params ``C_out (C_in / groups) k (+ C_out)``.
* ``nn.Linear``: MACs ``in_features * out_features`` per input row.

Low-rank formats are sequences of such convolutions, so their cost follows from these formulas
(see the ``cost`` method of each format class in :mod:`elrt_core.lowrank.layers` for their closed forms).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Cost", "LayerCost", "count", "conv_macs", "conv_params", "conv_out_hw", "trace_convs", "ConvGeometry"]


@dataclass(frozen=True)
class ConvGeometry:
    """Shape information of one ``nn.Conv2d`` as seen in a forward pass.

    ``in_hw``/``out_hw`` are the spatial sizes (height, width) of the layer's input and output.
    """

    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    bias: bool
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    @classmethod
    def of(cls, conv: nn.Conv2d, in_hw: tuple[int, int], out_hw: tuple[int, int] | None = None) -> ConvGeometry:
        """Geometry of ``conv`` for an input of spatial size ``in_hw``; ``out_hw`` is derived if omitted."""
        if isinstance(conv.padding, str):
            raise ValueError(f"string padding {conv.padding!r} is not supported; use explicit integers")
        if out_hw is None:
            out_hw = conv_out_hw(in_hw, conv.kernel_size, conv.stride, conv.padding, conv.dilation)
        return cls(
            in_channels=conv.in_channels,
            out_channels=conv.out_channels,
            kernel_size=tuple(conv.kernel_size),  # type: ignore[arg-type]
            stride=tuple(conv.stride),  # type: ignore[arg-type]
            padding=tuple(conv.padding),  # type: ignore[arg-type]
            dilation=tuple(conv.dilation),  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            in_hw=tuple(in_hw),  # type: ignore[arg-type]
            out_hw=tuple(out_hw),  # type: ignore[arg-type]
        )

    @property
    def macs(self) -> int:
        """MACs of the dense layer."""
        return conv_macs(self.in_channels, self.out_channels, self.kernel_size, self.out_hw, self.groups)

    @property
    def params(self) -> int:
        """Parameters of the dense layer (weight and bias)."""
        return conv_params(self.in_channels, self.out_channels, self.kernel_size, self.groups, self.bias)


def conv_out_hw(
    in_hw: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """Output spatial size of a convolution (PyTorch's formula, floor division)."""
    return tuple(  # type: ignore[return-value]
        (in_hw[a] + 2 * padding[a] - dilation[a] * (kernel_size[a] - 1) - 1) // stride[a] + 1 for a in (0, 1)
    )


def conv_macs(c_in: int, c_out: int, kernel_size: tuple[int, int], out_hw: tuple[int, int], groups: int = 1) -> int:
    """MACs of a convolution: ``H' W' C_out (C_in / groups) kh kw``."""
    return out_hw[0] * out_hw[1] * c_out * (c_in // groups) * kernel_size[0] * kernel_size[1]


def conv_params(c_in: int, c_out: int, kernel_size: tuple[int, int], groups: int = 1, bias: bool = False) -> int:
    """Parameters of a convolution: ``C_out (C_in / groups) kh kw`` plus ``C_out`` with a bias."""
    return c_out * (c_in // groups) * kernel_size[0] * kernel_size[1] + (c_out if bias else 0)


@dataclass(frozen=True)
class LayerCost:
    """Cost of one leaf layer (``nn.Conv2d`` or ``nn.Linear``) for one input image."""

    name: str
    kind: str
    macs: int
    params: int


@dataclass(frozen=True)
class Cost:
    """Cost of a whole model for one input image.

    ``macs``: MACs of all conv and linear layers; ``params``: all parameters of the model
    (including batch-norm and biases); ``layers``: the per-layer MACs and parameters.
    """

    macs: int
    params: int
    layers: tuple[LayerCost, ...] = field(default=(), compare=False, repr=False)


def _run_hooked(model: nn.Module, input_shape: tuple[int, ...], modules: dict[str, nn.Module], hook) -> None:
    """Run one forward pass of a batch of one zero image with ``hook(name, module, inp, out)``."""
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: hook(n, mod, i, o)) for n, m in modules.items()]
    modes = {m: m.training for m in model.modules()}
    # layers that can compute their function in several ways are counted in their stored form
    impls = {m: m.impl for m in model.modules() if callable(getattr(m, "set_impl", None))}
    for m in impls:
        m.set_impl("factored")
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)
        for m, impl in impls.items():
            m.set_impl(impl)


def trace_convs(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, ConvGeometry]:
    """Geometry of every ``nn.Conv2d`` of ``model`` (by qualified name) for one ``input_shape`` image.

    Layers that are not reached by the forward pass are absent from the result.
    """
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    out: dict[str, ConvGeometry] = {}

    def hook(name, mod, inp, outp):
        out[name] = ConvGeometry.of(mod, tuple(inp[0].shape[-2:]), tuple(outp.shape[-2:]))

    _run_hooked(model, input_shape, convs, hook)
    return out


def count(model: nn.Module, input_shape: tuple[int, int, int] = (3, 32, 32)) -> Cost:
    """Exact MACs and parameters of ``model`` for one image of shape ``input_shape`` (C, H, W).

    MACs are counted with forward hooks on every ``nn.Conv2d`` and ``nn.Linear`` (low-rank layers
    are built from ``nn.Conv2d`` and are therefore counted exactly, in their factored form even when
    set to compute through a reconstructed kernel). A layer applied twice is counted twice. The
    model's train/eval modes are restored afterwards.
    """
    leaves = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    macs: dict[str, int] = {}

    def hook(name, mod, inp, outp):
        if isinstance(mod, nn.Conv2d):
            n = conv_macs(mod.in_channels, mod.out_channels, mod.kernel_size, tuple(outp.shape[-2:]), mod.groups)
        else:
            n = mod.in_features * mod.out_features * (outp.numel() // outp.shape[-1])
        macs[name] = macs.get(name, 0) + n

    _run_hooked(model, input_shape, leaves, hook)
    layers = tuple(
        LayerCost(
            name=n,
            kind=type(m).__name__,
            macs=macs[n],
            params=sum(p.numel() for p in m.parameters(recurse=False)),
        )
        for n, m in leaves.items()
        if n in macs
    )
    return Cost(macs=sum(macs.values()), params=sum(p.numel() for p in model.parameters()), layers=layers)
