"""Approximation analysis (ELRT Figure 3): how well each low-rank format fits a conv kernel at equal cost.

For a kernel ``W`` (``C_out x C_in x k_h x k_w``) and a format, the rank is the largest one whose
cost is at most ``dense cost / ratio`` (the same per-layer rule as :func:`elrt_core.lowrank.convert`),
and the approximation is the format's best fit at that rank: HOOI for Tucker-2 (tensorly
``partial_tucker``), truncated SVD of the reshaped kernel for the matrix formats (optimal by
Eckart-Young), CP-ALS for CP (a local optimum). Errors are computed in float64:

* ``mse``: mean squared error ``mean((W - W_hat)^2)`` (the quantity plotted in the paper);
* ``rel_error``: relative squared error ``||W - W_hat||_F^2 / ||W||_F^2`` (comparable across layers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .cost import ConvGeometry, trace_convs
from .lowrank.convert import best_step, format_class
from .lowrank.layers import LowRankConv2d

__all__ = ["approximation_error", "layer_errors", "Approximation", "reconstruct"]


@dataclass(frozen=True)
class Approximation:
    """The best fit of one kernel in one format: ranks, cost (MACs, params) and errors."""

    format: str
    ranks: tuple[int, ...]
    dense_macs: int
    dense_params: int
    macs: int
    params: int
    mse: float
    rel_error: float


def _default_geometry(weight: torch.Tensor) -> ConvGeometry:
    """Stride 1, 'same' padding, 32x32 feature map: the geometry used when none is given."""
    c_out, c_in, kh, kw = weight.shape
    return ConvGeometry(c_in, c_out, (kh, kw), (1, 1), (kh // 2, kw // 2), (1, 1), 1, False, (32, 32), (32, 32))


def reconstruct(weight: torch.Tensor, fmt: str, ranks: tuple[int, ...]) -> np.ndarray:
    """Best fit of ``weight`` in format ``fmt`` at ``ranks``, as a float64 array of the kernel's shape."""
    cls = format_class(fmt)
    c_out, c_in, kh, kw = weight.shape
    ranks = cls.check_ranks(c_in, c_out, (kh, kw), ranks)
    layer = cls(c_in, c_out, (kh, kw), ranks, bias=False).double()
    with torch.no_grad():
        for conv, value in zip(layer._convs(), cls.best_fit(weight, ranks)):
            conv.weight.copy_(torch.as_tensor(value).reshape(conv.weight.shape))
        return layer.kernel().numpy()


def approximation_error(
    weight: torch.Tensor,
    fmt: str,
    *,
    macs_ratio: float | None = None,
    params_ratio: float | None = None,
    ranks: int | tuple[int, ...] | None = None,
    geometry: ConvGeometry | None = None,
) -> Approximation:
    """Error of the best approximation of ``weight`` (``C_out x C_in x k_h x k_w``) in format ``fmt``.

    Exactly one of ``macs_ratio`` / ``params_ratio`` (> 1: the layer's cost is cut by at least this
    factor, with the largest rank that fits) or ``ranks``. ``geometry`` gives the layer's stride
    and feature-map size for MAC counting (default: stride 1, same padding, 32x32).
    """
    if weight.dim() != 4:
        raise ValueError(f"weight must be (C_out, C_in, k_h, k_w), got shape {tuple(weight.shape)}")
    cls: type[LowRankConv2d] = format_class(fmt)
    given = [v for v in (macs_ratio, params_ratio, ranks) if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of macs_ratio, params_ratio, ranks")
    geom = geometry or _default_geometry(weight)
    if ranks is None:
        ratio, by = (macs_ratio, "macs") if macs_ratio is not None else (params_ratio, "params")
        if not ratio > 1:
            raise ValueError(f"{by}_ratio must be > 1, got {ratio}")
        dense = geom.macs if by == "macs" else geom.params
        step = best_step(cls, geom, dense / ratio, by)
        ranks = cls.rank_at(geom.in_channels, geom.out_channels, geom.kernel_size, step)
    ranks = cls.check_ranks(geom.in_channels, geom.out_channels, geom.kernel_size, ranks)
    w = weight.detach().to("cpu", torch.float64).numpy()
    diff2 = float(((w - reconstruct(weight, fmt, ranks)) ** 2).sum())
    macs, params = cls.cost(geom, ranks)
    return Approximation(
        format=fmt,
        ranks=ranks,
        dense_macs=geom.macs,
        dense_params=geom.params,
        macs=macs,
        params=params,
        mse=diff2 / w.size,
        rel_error=diff2 / float((w**2).sum()),
    )


def layer_errors(
    model: nn.Module,
    fmts: Iterable[str],
    ratio: float,
    *,
    by: str = "macs",
    input_shape: tuple[int, int, int] = (3, 32, 32),
    skip_first: bool = True,
    progress: bool = False,
) -> pd.DataFrame:
    """Approximation error of every (non-grouped) conv layer of ``model`` in each format.

    One row per layer and format with columns ``layer, index, format, ranks, dense_macs,
    dense_params, macs, params, macs_ratio, mse, rel_error``; ``ratio`` is the per-layer reduction
    of ``by`` (``"macs"`` or ``"params"``). The first conv (3 input channels) is left out by
    default, as in :func:`elrt_core.lowrank.convert`.
    """
    if by not in ("macs", "params"):
        raise ValueError(f"by must be 'macs' or 'params', got {by!r}")
    fmts = list(fmts)
    for f in fmts:
        format_class(f)
    geoms = trace_convs(model, input_shape)
    names = [n for n, g in geoms.items() if g.groups == 1][1 if skip_first else 0 :]
    if not names:
        raise ValueError(f"{type(model).__name__} has no conv layer to analyse")
    rows = []
    jobs = [(i, n, f) for i, n in enumerate(names) for f in fmts]
    for i, name, fmt in tqdm(jobs, desc=f"approximation {ratio}x", disable=not progress):
        weight = model.get_submodule(name).weight
        kw = {"macs_ratio": ratio} if by == "macs" else {"params_ratio": ratio}
        a = approximation_error(weight, fmt, geometry=geoms[name], **kw)
        rows.append({"layer": name, "index": i, **asdict(a), "macs_ratio": a.dense_macs / a.macs})
    return pd.DataFrame(rows)
