"""Hardware-aware rank rule: register-friendly ranks allocated across layers by measured time.

The uniform rule (:func:`elrt_core.lowrank.convert.select_ranks`) gives every layer the same cost
reduction, whatever the ranks cost in time: odd ranks (9, 19, 39) run the core convolution slowly,
and some layers (a memory-bound 16-channel stage) run no faster at low rank. This rule instead

1. offers each converted layer its **dense** form and every low-rank form whose ranks are
   register-friendly sizes (:func:`register_sizes`: multiples of 8, or of 16, 32, ... for wide
   layers, capped at the full rank), each with its cost (MACs or parameters per image, exact
   formulas of the format) and its **measured time** (forward + backward of the layer alone, from a
   :class:`TimingTable`, a committed ``elrt bench --rank-table`` record);
2. picks one option per layer (:func:`allocate`) so that the whole network costs at most the budget
   and at least ``budget / (1 + tolerance)`` (the achieved reduction ratio is within ``tolerance``
   of the request, never below it), with the **smallest sum of measured layer times**.

Step 2 is a multiple-choice knapsack, solved by dynamic programming over the budget discretized
into ``bins`` units; the chosen allocation's true cost is checked against both bounds, and
:func:`allocate` says what the discretization can cost in optimality. The predicted
step time assumes layer times add up and the rest of the step (batch norm, activations, the
optimizer) does not depend on the ranks; only a measured bench of the whole step tells the real
speedup.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cost import ConvGeometry
from .layers import LowRankConv2d

__all__ = [
    "Option",
    "register_sizes",
    "candidate_ranks",
    "allocate",
    "select_ranks_hw",
    "TimingTable",
    "shape_key",
    "table_id",
    "DEFAULT_BINS",
]

DEFAULT_BINS = 20_000
"""Budget units of :func:`allocate`: each option's cost is rounded up to ``budget / bins``."""

Ranks = tuple[int, ...]
ShapeKey = tuple[int, int, tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Option:
    """One form of one layer: ``ranks`` (``None``: the dense conv), ``cost`` (MACs or parameters
    per image) and ``ms`` (measured forward + backward milliseconds of the layer alone)."""

    ranks: Ranks | None
    cost: int
    ms: float


def register_sizes(full: int, max_sizes: int = 8) -> tuple[int, ...]:
    """Register-friendly rank sizes up to ``full``: the multiples of the smallest step in 8, 16, 32,
    ... that gives at most ``max_sizes`` of them, and ``full`` itself (the cap) when it is not one.

    ``register_sizes(64) == (8, 16, ..., 64)``; ``register_sizes(512) == (64, 128, ..., 512)``;
    ``register_sizes(20) == (8, 16, 20)``; a full rank below 8 gives ``(full,)``.
    """
    if full < 8:
        return (full,)
    step = 8
    while full // step > max_sizes:
        step *= 2
    sizes = tuple(range(step, full + 1, step))
    return sizes if sizes[-1] == full else (*sizes, full)


def candidate_ranks(cls: type[LowRankConv2d], geom: ConvGeometry, max_sizes: int = 8) -> list[Ranks]:
    """Every rank tuple of format ``cls`` drawn from :func:`register_sizes` per rank entry whose MACs
    are below the dense layer's (a low-rank form costing more than dense can never help a budget)."""
    full = cls.max_ranks(geom.in_channels, geom.out_channels, geom.kernel_size)
    grid = itertools.product(*(register_sizes(f, max_sizes) for f in full))
    return [r for r in grid if cls.cost(geom, r)[0] < geom.macs]


def allocate(
    options: Mapping[str, Sequence[Option]],
    budget: float,
    fixed_cost: float = 0.0,
    *,
    tolerance: float = 0.02,
    bins: int = DEFAULT_BINS,
) -> dict[str, Option]:
    """One option per layer with ``budget / (1 + tolerance) <= fixed_cost + sum(cost) <= budget`` and
    the smallest ``sum(ms)``.

    ``options``: the forms of each layer (:class:`Option`); ``fixed_cost``: the cost of everything
    not allocated here. Exact DP over ``bins`` budget units (``q = (budget - fixed_cost) / bins``,
    each cost rounded down to whole units): ``T_l[b]`` is the least time of the first ``l`` layers
    whose rounded costs sum to exactly ``b`` units. Every allocation within the budget has
    ``b <= bins``, so none is excluded. The totals are then tried from the fastest (ties: the larger
    total): the true cost of a path at ``b`` lies in ``[b q, b q + L q)`` (``L`` layers), so
    ``b q >= low`` meets the lower bound and the upper one is checked on the path. Only in the top
    ``L q`` of the window (0.27% of the budget for 54 layers at the default ``bins``) can the
    fastest path of a cell exceed the budget while a slower one of the same cell fits; that one is
    then missed. Raises ``ValueError`` when no allocation fits.
    """
    names = list(options)
    high = budget - fixed_cost
    low = budget / (1 + tolerance) - fixed_cost
    if high <= 0 or not names:
        raise ValueError(f"nothing to allocate: budget {budget:,.0f} leaves {high:,.0f} for {len(names)} layer(s)")
    unit = high / bins
    units = {n: [math.floor(o.cost / unit) for o in options[n]] for n in names}
    best = np.full(bins + 1, np.inf)
    best[0] = 0.0
    picks = np.full((len(names), bins + 1), -1, dtype=np.int32)
    for li, name in enumerate(names):
        new = np.full(bins + 1, np.inf)
        for j, (opt, u) in enumerate(zip(options[name], units[name])):
            if u > bins:
                continue
            shifted = best[: bins + 1 - u] + opt.ms
            better = shifted < new[u:]
            new[u:][better] = shifted[better]
            picks[li, u:][better] = j
        best = new
    totals = np.arange(bins + 1)
    for b in np.lexsort((-totals, best)):
        if not np.isfinite(best[b]):
            break
        if b * unit < low:
            continue
        chosen = _trace_back(names, options, units, picks, int(b))
        total = sum(o.cost for o in chosen.values())
        if low <= total <= high:
            return chosen
    cheapest = fixed_cost + sum(min(o.cost for o in options[n]) for n in names)
    raise ValueError(
        f"no allocation of the layers' options costs between {budget / (1 + tolerance):,.0f} and {budget:,.0f} "
        f"(the cheapest costs {cheapest:,.0f}; everything else {fixed_cost:,.0f})"
    )


def _trace_back(names, options, units, picks, total: int) -> dict[str, Option]:
    """The options of the DP path ending at ``total`` units (see :func:`allocate`)."""
    chosen = {}
    for li in range(len(names) - 1, -1, -1):
        j = int(picks[li, total])
        chosen[names[li]] = options[names[li]][j]
        total -= units[names[li]][j]
    return dict(reversed(list(chosen.items())))


def shape_key(geom: ConvGeometry) -> ShapeKey:
    """What a layer's time depends on, besides batch and device: channels, kernel, stride, padding,
    dilation and input size."""
    return (geom.in_channels, geom.out_channels, geom.kernel_size, geom.stride, geom.padding, geom.dilation, geom.in_hw)


def table_id(record: Mapping[str, Any]) -> str:
    """Content id of a timing-table record: the first 12 hex digits of the sha256 of the canonical JSON
    of its format, batch size, variant, device name and timings (a re-measured table gets a new id)."""
    content = {k: record[k] for k in ("format", "batch_size", "variant", "shapes")}
    content["device_name"] = record["provenance"]["device_name"]
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TimingTable:
    """Measured forward + backward milliseconds of each layer shape, dense and at candidate ranks.

    Built from an ``elrt bench --rank-table`` record (:meth:`from_record`); ``times`` maps a
    :func:`shape_key` to ``{None: dense ms, ranks: ms, ...}``.
    """

    table_id: str
    format: str
    device_name: str
    batch_size: int
    times: Mapping[ShapeKey, Mapping[Ranks | None, float]]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TimingTable:
        """Parse a ``rank_table`` record; its ``table_id`` must match its content."""
        if record.get("kind") != "rank_table":
            raise ValueError(f"not a timing-table record (kind {record.get('kind')!r})")
        if record["table_id"] != table_id(record):
            raise ValueError(f"timing table {record['table_id']}: its content does not match its id (edited after timing?)")
        times = {}
        for s in record["shapes"]:
            key = (
                s["in_channels"],
                s["out_channels"],
                *(tuple(s[k]) for k in ("kernel", "stride", "padding", "dilation", "in_hw")),
            )
            times[key] = {None: s["dense_ms"], **{tuple(c["ranks"]): c["ms"] for c in s["candidates"]}}
        return cls(record["table_id"], record["format"], record["provenance"]["device_name"], record["batch_size"], times)

    def covers(self, geoms: Mapping[str, ConvGeometry]) -> bool:
        """Whether every layer shape of ``geoms`` was timed."""
        return all(shape_key(g) in self.times for g in geoms.values())

    def options(self, cls: type[LowRankConv2d], geom: ConvGeometry, by: str) -> list[Option]:
        """The dense form and every timed rank tuple of layer ``geom``, with cost by ``by`` (``"macs"``
        or ``"params"``, from the format's formulas) and time from the table."""
        if cls.fmt != self.format:
            raise ValueError(f"timing table {self.table_id} timed format {self.format!r}, not {cls.fmt!r}")
        key = shape_key(geom)
        if key not in self.times:
            raise ValueError(
                f"timing table {self.table_id} has no layer of shape {key}; time this model with `elrt bench --rank-table`"
            )
        index = 0 if by == "macs" else 1
        dense = (geom.macs, geom.params)[index]
        return [Option(r, dense if r is None else cls.cost(geom, r)[index], ms) for r, ms in self.times[key].items()]


def select_ranks_hw(
    geoms: Mapping[str, ConvGeometry],
    cls: type[LowRankConv2d],
    budget: float,
    fixed_cost: int,
    by: str,
    table: TimingTable,
    *,
    tolerance: float = 0.02,
) -> dict[str, Ranks | None]:
    """Ranks per layer by :func:`allocate` over ``table``'s options (``None``: the layer stays dense)."""
    chosen = allocate({n: table.options(cls, g, by) for n, g in geoms.items()}, budget, fixed_cost, tolerance=tolerance)
    return {n: o.ranks for n, o in chosen.items()}
