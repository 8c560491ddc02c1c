"""Approximation analysis (ELRT Figure 3): each low-rank format's best fit of a conv kernel at equal cost.

A kernel ``W`` (``C_out x C_in x k_h x k_w``) of a conv layer with geometry ``geom`` and a budget
(a per-layer reduction ``budget > 1`` of its MACs, or of its parameters) admit, in each format, every
rank configuration whose cost is at most ``dense cost / budget``. The format's error at that budget is
the smallest error over those configurations, each fitted by the format's best fit
(:meth:`LowRankConv2d.best_fit`). Only the **budget frontier** needs fitting (:func:`frontier`: the
configurations where no single rank can grow and still fit), since a larger rank never fits worse.

* Matrix formats (channel and spatial reshape, :meth:`LowRankConv2d.matricize`): one rank, and the
  error at rank ``r`` is the energy of the discarded singular values (Eckart and Young 1936,
  Psychometrika 1(3)): exact, no fit needed (:func:`svd_errors`).
* Tucker-2 (``tucker_modes``): the frontier holds one pair ``(R1, R2)`` per input rank ``R1`` (the
  largest ``R2`` that fits), and every pair is fitted by the format's best fit (HOOI started from
  the truncated HOSVD, :func:`elrt_core.lowrank.tucker.tucker2`). To save time over many budgets,
  ``candidates=k`` fits only the ``k`` pairs of lowest truncated-HOSVD error (:func:`hosvd_errors`,
  De Lathauwer, De Moor and Vandewalle 2000, SIAM J. Matrix Anal. Appl. 21(4); one
  eigendecomposition per mode gives it for all pairs). HOOI only lowers the HOSVD error, but not by
  the same amount for every pair, so this is a heuristic: the tests pin trained and initial
  ResNet-20 kernels where the best pair is found with :data:`TUCKER_CANDIDATES` though it is fourth
  or fifth in HOSVD order, and one where it is ninth and the screened error stays within 0.001.
* Any other format (CP: ALS, tensorly ``parafac``, a local optimum) fits every frontier configuration;
  for one-rank formats the frontier is the single largest rank that fits.

Errors are computed in float64: ``rel_error = ||W - W_hat||_F^2 / ||W||_F^2`` (comparable across
layers) and ``mse = mean((W - W_hat)^2)`` (the quantity plotted in the paper).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm import tqdm

from .cost import ConvGeometry, trace_convs
from .lowrank.convert import format_class
from .lowrank.layers import FORMATS, LowRankConv2d
from .lowrank.tucker import leading_subspace

__all__ = [
    "Approximation",
    "KernelFits",
    "approximation_error",
    "best_approximation",
    "frontier",
    "hosvd_errors",
    "layer_errors",
    "reconstruct",
    "svd_errors",
    "TUCKER_CANDIDATES",
    "COLUMNS",
    "COST_NAMES",
]

Ranks = tuple[int, ...]

COST_NAMES = {"macs": "MACs", "params": "parameters"}
"""The two kinds of budget (``by``) and their names in figures and sentences."""

TUCKER_CANDIDATES = 6
"""A screening size for ``candidates``: Tucker-2 pairs of lowest HOSVD error to fit (see the module docstring)."""

COLUMNS = [
    "layer",
    "index",
    "format",
    "by",
    "budget",
    "ranks",
    "dense_macs",
    "dense_params",
    "macs",
    "params",
    "macs_ratio",
    "params_ratio",
    "mse",
    "rel_error",
    "frontier",
    "fitted",
]
"""Columns of :func:`layer_errors`."""


@dataclass(frozen=True)
class Approximation:
    """The best fit of one kernel in one format: ranks, cost (MACs, params per image) and errors.

    ``frontier``: configurations on the budget frontier; ``fitted``: how many of them had their error
    computed (the rest were ranked out by their HOSVD error). Both are 1 for a fit at given ranks.
    """

    format: str
    ranks: Ranks
    dense_macs: int
    dense_params: int
    macs: int
    params: int
    mse: float
    rel_error: float
    frontier: int = 1
    fitted: int = 1


def _default_geometry(weight: torch.Tensor) -> ConvGeometry:
    """Stride 1, 'same' padding, 32x32 feature map: the geometry used when none is given."""
    c_out, c_in, kh, kw = weight.shape
    return ConvGeometry(c_in, c_out, (kh, kw), (1, 1), (kh // 2, kw // 2), (1, 1), 1, False, (32, 32), (32, 32))


def _as_float64(weight: torch.Tensor) -> np.ndarray:
    if weight.dim() != 4:
        raise ValueError(f"weight must be (C_out, C_in, k_h, k_w), got shape {tuple(weight.shape)}")
    return weight.detach().to("cpu", torch.float64).numpy()


def _cost(cls: type[LowRankConv2d], geom: ConvGeometry, ranks: Ranks, by: str) -> int:
    macs, params = cls.cost(geom, ranks)
    return macs if by == "macs" else params


def _cap(geom: ConvGeometry, budget: float, by: str) -> float:
    """The largest cost ``dense cost / budget`` of one layer, after checking ``by`` and ``budget``."""
    if by not in COST_NAMES:
        raise ValueError(f"by must be 'macs' or 'params', got {by!r}")
    if not budget > 1:
        raise ValueError(f"a budget (reduction, dense / low-rank) must be > 1, got {budget}")
    return (geom.macs if by == "macs" else geom.params) / budget


def frontier(cls: type[LowRankConv2d], geom: ConvGeometry, cap: float, by: str = "macs") -> list[Ranks]:
    """The rank configurations of format ``cls`` on the budget frontier of layer ``geom``.

    A configuration is on the frontier when its ``by`` cost (``"macs"`` or ``"params"``) is at most
    ``cap`` and raising any one rank entry by one exceeds ``cap`` (or the entry is at full rank).
    Every entry but the last is enumerated; for each, the largest last entry that fits is found by
    bisection (the cost grows with every entry). For Tucker-2 this is, for each ``R1``, the largest
    ``R2`` that fits, minus the dominated pairs. Empty when even rank 1 exceeds ``cap``.
    """
    full = cls.max_ranks(geom.in_channels, geom.out_channels, geom.kernel_size)
    found = []
    for head in itertools.product(*(range(1, f + 1) for f in full[:-1])):
        lo, hi = 0, full[-1]
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _cost(cls, geom, (*head, mid), by) <= cap else (lo, mid - 1)
        if lo:
            found.append((*head, lo))

    def maximal(ranks: Ranks) -> bool:
        raised = [ranks[:j] + (r + 1,) + ranks[j + 1 :] for j, r in enumerate(ranks) if r < full[j]]
        return all(_cost(cls, geom, up, by) > cap for up in raised)

    return [r for r in found if maximal(r)]


def svd_errors(matrix: np.ndarray) -> np.ndarray:
    """Relative squared error of the best rank-``r`` approximation of ``matrix`` (``m x n``), for
    ``r = 0..min(m, n)``: ``sum_{i >= r} s_i^2 / sum_i s_i^2`` with singular values ``s`` in
    decreasing order (Eckart-Young). Shape ``(min(m, n) + 1,)``; 1 at ``r = 0``, 0 at full rank."""
    s2 = np.linalg.svd(matrix, compute_uv=False) ** 2
    tail = np.append(s2[::-1].cumsum()[::-1], 0.0)
    return tail / tail[0]


def hosvd_errors(weight: np.ndarray, modes: tuple[int, int]) -> np.ndarray:
    """Relative squared error of the truncated HOSVD of ``weight`` on two ``modes``, for all rank pairs.

    With ``U_a`` (``n_a x n_a``) the left singular vectors of the unfolding of mode ``modes[a]``,
    the core ``C = W x_{modes[0]} U_0^T x_{modes[1]} U_1^T`` holds all the energy of ``W``, and the
    truncation to ranks ``(r0, r1)`` is the orthogonal projection keeping the block
    ``C[:r0, :r1]``, so its error is ``1 - ||C[:r0, :r1]||^2 / ||W||^2`` (De Lathauwer et al. 2000).
    Returns ``E`` of shape ``(n_0 + 1, n_1 + 1)``, ``E[r0, r1]`` for ranks ``r0`` on ``modes[0]``
    and ``r1`` on ``modes[1]`` (row and column 0: rank 0, error 1).
    """
    unfoldings = [np.moveaxis(weight, m, 0).reshape(weight.shape[m], -1) for m in modes]
    bases = [leading_subspace(u, u.shape[0]) for u in unfoldings]
    moved = np.moveaxis(weight, modes, (0, 1))
    core = np.einsum("ab...,ai,bj->ij...", moved, *bases)
    energy = (core**2).reshape(core.shape[0], core.shape[1], -1).sum(-1)
    kept = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return np.clip(1.0 - kept / float((weight**2).sum()), 0.0, 1.0)


def reconstruct(weight: torch.Tensor, fmt: str, ranks: Ranks) -> np.ndarray:
    """Best fit of ``weight`` in format ``fmt`` at ``ranks``, as a float64 array of the kernel's shape."""
    cls = format_class(fmt)
    c_out, c_in, kh, kw = weight.shape
    ranks = cls.check_ranks(c_in, c_out, (kh, kw), ranks)
    layer = cls(c_in, c_out, (kh, kw), ranks, bias=False).double()
    with torch.no_grad():
        for conv, value in zip(layer.convs(), cls.best_fit(weight, ranks)):
            conv.weight.copy_(torch.as_tensor(value).reshape(conv.weight.shape))
        return layer.kernel().numpy()


class KernelFits:
    """The errors of one kernel's best fits in one format, each configuration computed once.

    ``weight``: ``C_out x C_in x k_h x k_w``; ``cls``: the format's layer class. Holds the exact
    errors of every rank (:func:`svd_errors`) for formats with :meth:`LowRankConv2d.matricize`,
    the HOSVD errors of every rank pair (:func:`hosvd_errors`) for formats with ``tucker_modes``,
    and the fits made so far, so that several budgets on one kernel share their work.
    """

    def __init__(self, weight: torch.Tensor, cls: type[LowRankConv2d]) -> None:
        self.weight = weight
        self.cls = cls
        w = _as_float64(weight)
        self.norm2 = float((w**2).sum())
        self.size = w.size
        matrix = cls.matricize(w)
        self.exact = svd_errors(matrix) if matrix is not None else None
        self.screen = hosvd_errors(w, cls.tucker_modes) if cls.tucker_modes is not None else None
        self._fitted: dict[Ranks, float] = {}

    def error(self, ranks: Ranks) -> float:
        """Relative squared error of the best fit at ``ranks``: Eckart-Young where exact, else a fit."""
        if self.exact is not None:
            return float(self.exact[ranks[0]])
        if ranks not in self._fitted:
            w = _as_float64(self.weight)
            diff2 = float(((w - reconstruct(self.weight, self.cls.fmt, ranks)) ** 2).sum())
            self._fitted[ranks] = diff2 / self.norm2
        return self._fitted[ranks]

    def candidates(self, configs: list[Ranks], keep: int | None = None) -> list[Ranks]:
        """The configurations to fit: all of them, or with ``keep`` and a format with ``tucker_modes``
        and no exact errors, the ``keep`` of lowest HOSVD error (ties kept in frontier order)."""
        if keep is None or self.screen is None or self.exact is not None:
            return configs
        order = sorted(range(len(configs)), key=lambda i: (self.screen[configs[i]], i))
        return [configs[i] for i in order[:keep]]


def approximation_error(
    weight: torch.Tensor, fmt: str, ranks: int | Ranks, geometry: ConvGeometry | None = None
) -> Approximation:
    """The best fit of ``weight`` (``C_out x C_in x k_h x k_w``) in format ``fmt`` at the given ``ranks``,
    by direct reconstruction. ``geometry``: the layer's stride and feature-map size for MAC counting
    (default: stride 1, same padding, 32x32)."""
    cls = format_class(fmt)
    w = _as_float64(weight)
    geom = geometry or _default_geometry(weight)
    ranks = cls.check_ranks(geom.in_channels, geom.out_channels, geom.kernel_size, ranks)
    diff2 = float(((w - reconstruct(weight, fmt, ranks)) ** 2).sum())
    macs, params = cls.cost(geom, ranks)
    return Approximation(fmt, ranks, geom.macs, geom.params, macs, params, diff2 / w.size, diff2 / float((w**2).sum()))


def best_approximation(
    weight: torch.Tensor,
    fmt: str,
    budget: float,
    by: str = "macs",
    geometry: ConvGeometry | None = None,
    candidates: int | None = None,
    fits: KernelFits | None = None,
) -> Approximation | None:
    """The best fit of ``weight`` (``C_out x C_in x k_h x k_w``) in format ``fmt`` within a budget.

    The budget is the layer's dense ``by`` cost (``"macs"`` or ``"params"``) divided by ``budget``
    (> 1); every configuration on its :func:`frontier` is a candidate, and all are fitted unless
    ``candidates=k`` screens Tucker-2 pairs down to ``k`` (see the module docstring). ``geometry``:
    as in :func:`approximation_error`. ``fits``: a :class:`KernelFits` of this kernel and format to
    reuse across budgets. None when no configuration of the format fits the budget.
    """
    cls = format_class(fmt)
    geom = geometry or _default_geometry(weight)
    configs = frontier(cls, geom, _cap(geom, budget, by), by)
    if not configs:
        return None
    fits = fits or KernelFits(weight, cls)
    if fits.cls is not cls or fits.weight is not weight:
        raise ValueError("fits belong to another kernel or format")
    tried = fits.candidates(configs, candidates)
    best = min(tried, key=fits.error)
    macs, params = cls.cost(geom, best)
    err = fits.error(best)
    return Approximation(
        fmt, best, geom.macs, geom.params, macs, params, err * fits.norm2 / fits.size, err, len(configs), len(tried)
    )


def layer_errors(
    model: nn.Module,
    formats: Iterable[str] | None = None,
    macs_budgets: Iterable[float] = (2.0,),
    params_budgets: Iterable[float] = (),
    *,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    skip_first: bool = True,
    candidates: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """The best approximation of every (non-grouped) conv layer of ``model`` in each format and budget.

    ``formats``: default every format of :data:`elrt_core.lowrank.FORMATS`. Budgets: a per-layer
    reduction of MACs for each of ``macs_budgets`` and of parameters for each of ``params_budgets``.
    One row per layer, format and budget (columns :data:`COLUMNS`): ``by`` and ``budget`` (the
    target reduction) name the budget; ``macs_ratio`` and ``params_ratio`` are the achieved
    per-layer reductions (dense / low-rank, ``>= budget`` for the budget's cost); ``index`` is the
    layer's position. A format with no configuration within a budget has no row. ``candidates``: see
    :func:`best_approximation`. The first conv (3 input channels) is left out by default, as in
    :func:`elrt_core.lowrank.convert`. Single-threaded BLAS throughout.
    """
    formats = list(FORMATS) if formats is None else list(formats)
    classes = {f: format_class(f) for f in formats}
    budgets = [("macs", float(r)) for r in macs_budgets] + [("params", float(r)) for r in params_budgets]
    geoms = trace_convs(model, input_shape)
    names = [n for n, g in geoms.items() if g.groups == 1][1 if skip_first else 0 :]
    if not names:
        raise ValueError(f"{type(model).__name__} has no conv layer to analyse")
    for by, budget in budgets:
        _cap(geoms[names[0]], budget, by)
    rows = []
    jobs = [(i, n, f) for i, n in enumerate(names) for f in formats]
    with threadpool_limits(limits=1, user_api="blas"):
        for i, name, fmt in tqdm(jobs, desc="approximation", disable=not progress):
            weight = model.get_submodule(name).weight
            fits = KernelFits(weight, classes[fmt])
            for by, budget in budgets:
                a = best_approximation(weight, fmt, budget, by, geoms[name], candidates, fits)
                if a is not None:
                    rows.append(
                        {
                            "layer": name,
                            "index": i,
                            "by": by,
                            "budget": budget,
                            **asdict(a),
                            "macs_ratio": a.dense_macs / a.macs,
                            "params_ratio": a.dense_params / a.params,
                        }
                    )
    return pd.DataFrame(rows, columns=COLUMNS)
