"""Model conversion: replace the conv layers of a dense model by low-rank layers within a budget.

Rank-selection rule (``flops_ratio`` or ``params_ratio``), used for every format alike:

1. The whole-network budget is ``dense cost / ratio`` (MACs for ``flops_ratio``, parameters for
   ``params_ratio``). Layers that are not converted (the first conv and the classifier by default,
   grouped convs, batch norm) keep their cost, so the converted layers must shrink by more.
2. **Uniform reduction.** For a per-layer reduction factor ``rho``, every converted layer takes the
   highest step of its format's rank ladder (:meth:`LowRankConv2d.rank_at`: all ranks scaled
   together) whose cost is at most ``layer dense cost / rho``. ``rho`` is found by bisection as the
   smallest value whose whole network fits the budget.
3. **Rounding repair.** Ranks are integers, so step 2 undershoots the budget. Ranks are then raised
   one step at a time, always in the currently most-compressed layer whose next step still fits,
   until no step fits. The result never exceeds the budget, and misses it by less than one rank
   step of one layer; :func:`convert` checks the achieved ratio is within 2% of the request.

The achieved cost is then counted exactly on the new model with :func:`elrt_core.cost.count`.

With a :class:`~elrt_core.lowrank.hw_ranks.TimingTable` (``timing=``), the hardware-aware rule of
:mod:`elrt_core.lowrank.hw_ranks` replaces steps 2-3: register-friendly ranks, or the dense layer,
chosen per layer for the least measured time within the same budget.

:func:`to_dense` is the inverse: every low-rank layer back to the ``nn.Conv2d`` of its kernel.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm import tqdm

from ..cost import ConvGeometry, count, trace_convs
from .hw_ranks import TimingTable, select_ranks_hw
from .layers import FORMATS, LowRankConv2d

__all__ = [
    "convert",
    "convertible",
    "to_dense",
    "report",
    "ConversionReport",
    "LayerReport",
    "select_ranks",
    "best_step",
    "format_class",
    "RATIO_TOLERANCE",
    "PROGRESS_DELAY_S",
]

RATIO_TOLERANCE = 0.02
"""Largest allowed relative miss of the requested whole-network reduction ratio."""

PROGRESS_DELAY_S = 2.0
"""A conversion shows its progress bar only once it has taken this many seconds."""

RankSpec = float | int | tuple[int, ...] | Mapping[str, int | tuple[int, ...]]


def format_class(fmt: str) -> type[LowRankConv2d]:
    """The layer class of format ``fmt``, or ``ValueError`` naming the allowed formats."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown low-rank format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return FORMATS[fmt]


def _layer_cost(cls: type[LowRankConv2d], geom: ConvGeometry, step: int, by: str) -> int:
    ranks = cls.rank_at(geom.in_channels, geom.out_channels, geom.kernel_size, step)
    macs, params = cls.cost(geom, ranks)
    return macs if by == "macs" else params


def best_step(cls: type[LowRankConv2d], geom: ConvGeometry, cap: float, by: str) -> int:
    """Highest rank-ladder step of ``cls`` whose ``by`` cost is <= ``cap`` (1 if step 1 exceeds it)."""
    lo, hi = 1, cls.n_steps(geom.in_channels, geom.out_channels, geom.kernel_size)
    if _layer_cost(cls, geom, 1, by) > cap:
        return 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _layer_cost(cls, geom, mid, by) <= cap:
            lo = mid
        else:
            hi = mid - 1
    return lo


def select_ranks(
    geoms: Mapping[str, ConvGeometry], fmt: str, budget: float, fixed_cost: int, by: str = "macs"
) -> dict[str, tuple[int, ...]]:
    """Ranks per layer so that ``fixed_cost + sum(layer costs) <= budget`` as tightly as possible.

    ``geoms``: the layers to convert; ``fixed_cost``: the cost of everything else; ``by``:
    ``"macs"`` or ``"params"``. Implements steps 2 and 3 of the module's rule. Raises ``ValueError``
    when the budget is below the cost at rank 1 everywhere.
    """
    cls = format_class(fmt)
    dense = {n: (g.macs if by == "macs" else g.params) for n, g in geoms.items()}
    floor = fixed_cost + sum(_layer_cost(cls, g, 1, by) for g in geoms.values())
    if floor > budget:
        raise ValueError(
            f"the requested reduction is not reachable with format {fmt!r}: even at rank 1 in every converted "
            f"layer the model costs {floor:,} {by} (budget {budget:,.0f}); the largest reachable ratio is "
            f"{(fixed_cost + sum(dense.values())) / floor:.2f}"
        )

    def steps_for(rho: float) -> dict[str, int]:
        return {n: best_step(cls, g, dense[n] / rho, by) for n, g in geoms.items()}

    def total(steps: Mapping[str, int]) -> int:
        return fixed_cost + sum(_layer_cost(cls, geoms[n], s, by) for n, s in steps.items())

    lo, hi = 1.0, max(dense[n] / _layer_cost(cls, g, 1, by) for n, g in geoms.items()) + 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if total(steps_for(mid)) <= budget:
            hi = mid
        else:
            lo = mid
    steps = steps_for(hi)
    current = total(steps)
    n_max = {n: cls.n_steps(g.in_channels, g.out_channels, g.kernel_size) for n, g in geoms.items()}
    while True:
        best, best_reduction = None, -1.0
        for n, g in geoms.items():
            if steps[n] >= n_max[n]:
                continue
            now = _layer_cost(cls, g, steps[n], by)
            extra = _layer_cost(cls, g, steps[n] + 1, by) - now
            reduction = dense[n] / now
            if current + extra <= budget and reduction > best_reduction:
                best, best_reduction = n, reduction
        if best is None:
            break
        current += _layer_cost(cls, geoms[best], steps[best] + 1, by) - _layer_cost(cls, geoms[best], steps[best], by)
        steps[best] += 1
    return {n: cls.rank_at(g.in_channels, g.out_channels, g.kernel_size, steps[n]) for n, g in geoms.items()}


def _check_ratio(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and value > 1):
        raise ValueError(f"{name} must be a number > 1 (dense cost / low-rank cost), got {value!r}")


def _explicit_ranks(spec: RankSpec, geoms: Mapping[str, ConvGeometry], cls: type[LowRankConv2d]) -> dict[str, tuple[int, ...]]:
    out = {}
    for name, g in geoms.items():
        if isinstance(spec, float):
            if not 0 < spec <= 1:
                raise ValueError(f"a rank fraction must be in (0, 1], got {spec}")
            full = cls.max_ranks(g.in_channels, g.out_channels, g.kernel_size)
            r: int | tuple[int, ...] = tuple(max(1, round(spec * f)) for f in full)
        elif isinstance(spec, Mapping):
            if name not in spec:
                continue
            r = spec[name]
        else:
            r = spec
        out[name] = cls.check_ranks(g.in_channels, g.out_channels, g.kernel_size, r)
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(geoms))
        if unknown:
            raise ValueError(f"ranks given for layers that cannot be converted: {unknown}; convertible: {sorted(geoms)}")
    return out


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, attr, module)


def convertible(
    model: nn.Module, input_shape: tuple[int, int, int], skip: Iterable[str] | None = None
) -> dict[str, ConvGeometry]:
    """Geometry of each conv layer :func:`convert` would convert: reached by a forward pass of one
    ``input_shape`` image, not grouped, and not matched by ``skip`` (``fnmatch`` patterns; default:
    the first conv of the network). Raises ``ValueError`` when there is none."""
    geoms_all = trace_convs(model, input_shape)
    if not geoms_all:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d reached by a forward pass: nothing to convert")
    patterns = list(skip) if skip is not None else [next(iter(geoms_all))]
    geoms = {n: g for n, g in geoms_all.items() if g.groups == 1 and not any(fnmatch.fnmatchcase(n, p) for p in patterns)}
    if not geoms:
        raise ValueError(
            f"{type(model).__name__} has nothing to convert: its conv layers {list(geoms_all)} are all skipped "
            f"(skip={patterns}) or grouped"
        )
    return geoms


def convert(
    model: nn.Module,
    fmt: str,
    *,
    flops_ratio: float | None = None,
    params_ratio: float | None = None,
    ranks: RankSpec | None = None,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    skip: Iterable[str] | None = None,
    init: str = "decompose",
    timing: TimingTable | None = None,
    progress: bool | None = None,
) -> nn.Module:
    """A copy of ``model`` whose conv layers are in low-rank format ``fmt``; ``model`` is not modified.

    Exactly one of:

    * ``flops_ratio``: whole-network MACs reduced by this factor (> 1), within 2%;
    * ``params_ratio``: whole-network parameters reduced by this factor (> 1), within 2%;
    * ``ranks``: a rank fraction in (0, 1] of every layer's full rank, one rank (int, or
      ``(r_in, r_out)`` for Tucker-2) for every layer, or a mapping ``{layer name: rank}``.

    ``skip``: names (``fnmatch`` patterns) of conv layers kept dense; default: the first conv of the
    network. Linear layers and grouped/depthwise convs always stay dense. ``init``: ``"decompose"``
    initializes each low-rank layer from the dense kernel (best fit in its format, one BLAS thread),
    ``"scratch"`` draws fresh Kaiming-variance factors (low-rank training from scratch). ``timing``:
    with a ratio, choose ranks by the hardware-aware rule over this measured table (some layers may
    stay dense) instead of the uniform rule. ``progress``: a progress bar over the layers being
    decomposed, shown once the conversion has taken :data:`PROGRESS_DELAY_S` seconds (``None``: only
    on a terminal; ``False``: never). See the module docstring for the rank rules; :func:`report`
    describes the result.
    """
    cls = format_class(fmt)
    given = [k for k, v in (("flops_ratio", flops_ratio), ("params_ratio", params_ratio), ("ranks", ranks)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of flops_ratio, params_ratio, ranks (got {given or 'none'})")
    _check_ratio("flops_ratio", flops_ratio)
    _check_ratio("params_ratio", params_ratio)
    if init not in ("decompose", "scratch"):
        raise ValueError(f"unknown init {init!r}; allowed: decompose, scratch")
    if timing is not None and ranks is not None:
        raise ValueError("a timing table chooses ranks for a budget: give flops_ratio or params_ratio, not ranks")

    geoms = convertible(model, input_shape, skip)
    if ranks is not None:
        chosen: Mapping[str, tuple[int, ...] | None] = _explicit_ranks(ranks, geoms, cls)
    else:
        chosen = _budget_ranks(model, geoms, fmt, flops_ratio, params_ratio, input_shape, timing)
    new = _replace_layers(model, chosen, cls, init, progress)
    if ranks is None:
        by, ratio = ("macs", flops_ratio) if flops_ratio is not None else ("params", params_ratio)
        achieved = report(new, input_shape)
        got = achieved.macs_ratio if by == "macs" else achieved.params_ratio
        if abs(got / ratio - 1) > RATIO_TOLERANCE:
            raise ValueError(
                f"rank granularity: {fmt} reaches a {by} ratio of {got:.3f}, not {ratio} within "
                f"{RATIO_TOLERANCE:.0%}; the layers are too small for this target"
            )
    return new


def _budget_ranks(
    model: nn.Module,
    geoms: Mapping[str, ConvGeometry],
    fmt: str,
    flops_ratio: float | None,
    params_ratio: float | None,
    input_shape: tuple[int, int, int],
    timing: TimingTable | None,
) -> Mapping[str, tuple[int, ...] | None]:
    """Ranks per layer for the whole-network budget: the uniform rule, or the hardware-aware one with ``timing``."""
    by, ratio = ("macs", flops_ratio) if flops_ratio is not None else ("params", params_ratio)
    dense_cost = count(model, input_shape)
    dense_total = dense_cost.macs if by == "macs" else dense_cost.params
    converted = sum((g.macs if by == "macs" else g.params) for g in geoms.values())
    if timing is None:
        return select_ranks(geoms, fmt, dense_total / ratio, dense_total - converted, by=by)
    return select_ranks_hw(
        geoms, format_class(fmt), dense_total / ratio, dense_total - converted, by, timing, tolerance=RATIO_TOLERANCE
    )


def _replace_layers(
    model: nn.Module, chosen: Mapping[str, tuple[int, ...] | None], cls: type[LowRankConv2d], init: str, progress: bool | None
) -> nn.Module:
    """A copy of ``model`` with each layer of ``chosen`` (``None``: kept dense) in format ``cls``,
    decomposed from its kernel or drawn from scratch (``init``), with one BLAS thread."""
    new = copy.deepcopy(model)
    todo = {n: r for n, r in chosen.items() if r is not None}
    show = init == "decompose" and progress is not False
    bar = tqdm(
        todo.items(),
        desc=f"{cls.fmt} decomposition",
        unit="layer",
        delay=PROGRESS_DELAY_S,
        leave=False,
        disable=(None if progress is None else False) if show else True,
    )
    with threadpool_limits(limits=1, user_api="blas"):
        for name, r in bar:
            dense_conv = new.get_submodule(name)
            layer = cls.from_dense(dense_conv, r) if init == "decompose" else cls.like(dense_conv, r)
            _set_module(new, name, layer)
    return new


def to_dense(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every low-rank layer replaced by the ``nn.Conv2d`` of its reconstructed
    kernel (:meth:`LowRankConv2d.to_dense`): the same function, dense cost. ``model`` is not modified;
    each new conv keeps its layer's train/eval mode."""
    if isinstance(model, LowRankConv2d):
        return model.to_dense().train(model.training)
    new = copy.deepcopy(model)
    for name, module in list(new.named_modules()):
        if isinstance(module, LowRankConv2d):
            _set_module(new, name, module.to_dense().train(module.training))
    return new


@dataclass(frozen=True)
class LayerReport:
    """One conv layer of a (possibly) converted model; costs per image, MACs and parameters."""

    name: str
    format: str
    ranks: tuple[int, ...] | None
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    dense_macs: int
    dense_params: int
    macs: int
    params: int
    note: str


@dataclass(frozen=True)
class ConversionReport:
    """Per-layer ranks and costs of a model, and whole-network totals against its dense version."""

    layers: tuple[LayerReport, ...]
    dense_macs: int
    dense_params: int
    macs: int
    params: int

    @property
    def macs_ratio(self) -> float:
        """Whole-network MAC reduction ``dense / low-rank``."""
        return self.dense_macs / self.macs

    @property
    def params_ratio(self) -> float:
        """Whole-network parameter reduction ``dense / low-rank``."""
        return self.dense_params / self.params

    def to_frame(self) -> pd.DataFrame:
        """One row per conv layer."""
        return pd.DataFrame([asdict(layer) for layer in self.layers])

    def to_dict(self) -> dict:
        """JSON-ready form (for run records)."""
        return {
            "dense_macs": self.dense_macs,
            "dense_params": self.dense_params,
            "macs": self.macs,
            "params": self.params,
            "macs_ratio": self.macs_ratio,
            "params_ratio": self.params_ratio,
            "layers": [asdict(layer) for layer in self.layers],
        }

    def __str__(self) -> str:
        df = self.to_frame()
        df["ranks"] = df["ranks"].map(lambda r: "-" if r is None else "x".join(map(str, r)))
        df["kernel"] = df["kernel_size"].map(lambda k: f"{k[0]}x{k[1]}")
        df["macs_ratio"] = (df["dense_macs"] / df["macs"]).map("{:.2f}".format)
        cols = [
            "name",
            "format",
            "ranks",
            "in_channels",
            "out_channels",
            "kernel",
            "dense_macs",
            "macs",
            "macs_ratio",
            "dense_params",
            "params",
            "note",
        ]
        table = df[cols].to_string(index=False)
        return (
            f"{table}\n\nwhole network: MACs {self.dense_macs:,} -> {self.macs:,} ({self.macs_ratio:.3f}x), "
            f"params {self.dense_params:,} -> {self.params:,} ({self.params_ratio:.3f}x)"
        )


def report(model: nn.Module, input_shape: tuple[int, int, int] = (3, 32, 32)) -> ConversionReport:
    """Describe every conv layer of ``model`` (low-rank or dense) and the whole-network reduction.

    The dense reference of a low-rank layer is the ``nn.Conv2d`` it replaces (same geometry); the
    totals are counted exactly with :func:`elrt_core.cost.count` on ``model``.
    """
    lowrank = {n: m for n, m in model.named_modules() if isinstance(m, LowRankConv2d)}
    inner = {f"{n}.{c}" for n, m in lowrank.items() for c, _ in m.named_modules() if c}
    dense = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n not in inner}
    seen: dict[str, tuple[int, int]] = {}

    def remember(name: str, inp: tuple[torch.Tensor, ...]) -> None:
        seen.setdefault(name, tuple(inp[0].shape[-2:]))

    handles = [m.register_forward_hook(lambda mod, i, o, n=n: remember(n, i)) for n, m in {**lowrank, **dense}.items()]
    try:
        total = count(model, input_shape)
    finally:
        for h in handles:
            h.remove()
    rows, saved_macs, saved_params = [], 0, 0
    for name, m in model.named_modules():
        if name not in seen:
            continue
        if name in lowrank:
            geom = m.geometry(seen[name])
            macs, params = type(m).cost(geom, m.ranks)
            fmt, ranks, note = m.fmt, m.ranks, ""
        else:
            geom = ConvGeometry.of(m, seen[name])
            macs, params = geom.macs, geom.params
            fmt, ranks = "dense", None
            note = f"grouped (groups={m.groups}): kept dense" if m.groups != 1 else "kept dense"
        saved_macs += geom.macs - macs
        saved_params += geom.params - params
        rows.append(
            LayerReport(
                name,
                fmt,
                ranks,
                geom.in_channels,
                geom.out_channels,
                geom.kernel_size,
                geom.stride,
                geom.macs,
                geom.params,
                macs,
                params,
                note,
            )
        )
    return ConversionReport(tuple(rows), total.macs + saved_macs, total.params + saved_params, total.macs, total.params)
