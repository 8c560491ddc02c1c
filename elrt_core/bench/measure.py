"""The measurements of ``elrt bench`` beside the speedup (:mod:`.speedup`), each returning a
JSON-ready record: regularizer overhead, per-layer times, and the timing table of the hardware-aware
rank rule (:func:`rank_table`)."""

from __future__ import annotations

import time
from dataclasses import asdict
from functools import partial
from typing import Any

import torch

from .. import lowrank, models
from ..cost import trace_convs
from ..lowrank.hw_ranks import candidate_ranks, shape_key, table_id
from ..machine_load import BackgroundLoad
from ..regularizers import REGULARIZERS
from ..timing import in_turns, layer_step
from .settings import BenchSettings, build_models, random_batch, record_provenance
from .steppers import Stepper

__all__ = ["regularizer_overhead", "aligned_ranks", "layer_times", "rank_table", "RANK_SIZES"]

RANK_SIZES = 8
"""Rank sizes per rank entry that :func:`rank_table` times (see :func:`elrt_core.lowrank.hw_ranks.register_sizes`)."""


def regularizer_overhead(s: BenchSettings, on: tuple[str, ...] = ("U2",)) -> dict[str, Any]:
    """Training-step time of the low-rank model with each regularizer vs none (alternating, medians).

    Two measures per regularizer: ``overhead_pct``, the difference of whole-step medians (what a run
    feels, but within the step-to-step noise of a shared CPU), and ``penalty_pct``, the penalty's own
    forward + backward time as a share of the unregularized step (a direct, low-noise measure).
    """
    s.validate()
    device = torch.device(s.device)
    started, load = time.time(), BackgroundLoad()
    _, low, shape = build_models(s, device)
    x, y = random_batch(s, shape, device)
    names = ["none", *REGULARIZERS]
    steppers = [Stepper(low, x, y, reg, **s.stepper_options) for reg in names]
    times = in_turns([st.train for st in steppers], s.steps, s.warmup)
    own = in_turns([st.regularize for st in steppers], s.steps, s.warmup)
    base = times[0]
    rows = [
        {
            "regularizer": n,
            "on": "+".join(on),
            "step_ms": round(1000 * t, 2),
            "overhead_pct": round(100 * (t / base - 1), 2),
            "penalty_ms": round(1000 * r, 3),
            "penalty_pct": round(100 * r / base, 2),
        }
        for n, t, r in zip(names, times, own)
    ]
    return {
        "kind": "regularizer_overhead",
        **asdict(s),
        "rows": rows,
        "provenance": record_provenance(s, device, started, load),
    }


def aligned_ranks(ranks: tuple[int, ...], full: tuple[int, ...]) -> tuple[int, ...]:
    """Each rank moved to the nearest of 8, 16, 32, 48, ... (multiples of 16, the fp32 lanes of an
    AVX-512 register, and 8 below 16; ties go down), at most its ``full`` rank; ranks below 6 stay."""

    def nearest(r: int, f: int) -> int:
        if r < 6:
            return r
        sizes = [v for v in [8, *range(16, f + 1, 16)] if v <= f] or [r]
        return min(sizes, key=lambda v: (abs(v - r), v))

    return tuple(nearest(r, f) for r, f in zip(ranks, full))


def _check_layer_variant(s: BenchSettings, what: str) -> None:
    """Layers are timed alone only as factored chains, in either memory format."""
    if s.variant not in ("factored", "channels_last"):
        raise ValueError(f"{what} support the variants factored and channels_last, got {s.variant!r}")


def _layer_groups(dense: torch.nn.Module, low: torch.nn.Module, shape: tuple[int, ...]) -> dict[tuple, dict[str, Any]]:
    """The converted conv layers of ``low`` by (in and out channels, kernel, stride, input size, ranks):
    one dense and one low-rank layer of each, their geometry, and how many layers share it."""
    dense_mods, low_mods = dict(dense.named_modules()), dict(low.named_modules())
    groups: dict[tuple, dict[str, Any]] = {}
    for name, g in trace_convs(dense, shape).items():
        layer = low_mods.get(name)
        if not isinstance(layer, lowrank.LowRankConv2d):
            continue
        key = (g.in_channels, g.out_channels, g.kernel_size, g.stride, g.in_hw, layer.ranks)
        groups.setdefault(key, {"dense": dense_mods[name], "low": layer, "geom": g, "layers": 0})["layers"] += 1
    return groups


def _layer_row(s: BenchSettings, key: tuple, grp: dict[str, Any], device: torch.device, memory: torch.memory_format) -> dict:
    """One row of :func:`layer_times`: the group's dense layer, its low-rank layer and the low-rank layer
    at :func:`aligned_ranks`, timed in turns (milliseconds) beside their MACs per image."""
    c_in, c_out, kernel, stride, in_hw, ranks = key
    g, layer = grp["geom"], grp["low"]
    aligned = aligned_ranks(ranks, type(layer).max_ranks(c_in, c_out, kernel))
    twin = type(layer).like(grp["dense"], aligned).to(device, memory_format=memory)
    x = torch.randn(s.batch_size, c_in, *in_hw, device=device).contiguous(memory_format=memory)
    t_dense, t_low, t_aligned = in_turns([partial(layer_step, m, x) for m in (grp["dense"], layer, twin)], s.steps, s.warmup)
    low_macs, aligned_macs = type(layer).cost(g, ranks)[0], type(layer).cost(g, aligned)[0]
    return {
        "in_channels": c_in,
        "out_channels": c_out,
        "kernel": list(kernel),
        "stride": list(stride),
        "in_hw": list(in_hw),
        "layers": grp["layers"],
        "ranks": list(ranks),
        "dense_macs": g.macs,
        "lowrank_macs": low_macs,
        "aligned_macs": aligned_macs,
        "macs_ratio": g.macs / low_macs,
        "dense_ms": 1000 * t_dense,
        "lowrank_ms": 1000 * t_low,
        "speedup": t_dense / t_low,
        "aligned_ranks": list(aligned),
        "aligned_macs_ratio": g.macs / aligned_macs,
        "aligned_ms": 1000 * t_aligned,
        "aligned_speedup": t_dense / t_aligned,
    }


def _layer_totals(rows: list[dict]) -> dict[str, float]:
    """MAC reductions and speedups of all rows together, each row weighted by its layer count."""

    def total(key: str) -> float:
        return sum(r[key] * r["layers"] for r in rows)

    return {
        "macs_ratio": total("dense_macs") / total("lowrank_macs"),
        "speedup": total("dense_ms") / total("lowrank_ms"),
        "aligned_macs_ratio": total("dense_macs") / total("aligned_macs"),
        "aligned_speedup": total("dense_ms") / total("aligned_ms"),
    }


def layer_times(s: BenchSettings) -> dict[str, Any]:
    """Training time (forward + backward) of each converted conv shape of the model, dense vs low-rank.

    For every distinct (channels, kernel, stride, input size, ranks) among the converted layers,
    the dense ``nn.Conv2d``, its low-rank layer at the model's ranks, and the same layer at
    :func:`aligned_ranks` (the nearest register-friendly sizes) are timed in turns on a random
    batch (medians; the variant's memory format; low-rank layers factored). Rows carry each
    layer's MAC reduction, so the cost of odd rank sizes shows next to the MAC savings.
    ``totals`` weights each row by its layer count.
    """
    s.validate()
    _check_layer_variant(s, "layer times")
    device = torch.device(s.device)
    started, load = time.time(), BackgroundLoad()
    dense, low, shape = build_models(s, device)
    memory = torch.channels_last if s.channels_last else torch.contiguous_format
    rows = [_layer_row(s, key, grp, device, memory) for key, grp in _layer_groups(dense, low, shape).items()]
    return {
        "kind": "layer_times",
        **asdict(s),
        "rows": rows,
        "totals": _layer_totals(rows),
        "provenance": record_provenance(s, device, started, load),
    }


def rank_table(s: BenchSettings, max_sizes: int = RANK_SIZES) -> dict[str, Any]:
    """The timing table of the hardware-aware rank rule: training time (forward + backward) of every
    converted conv shape of ``s.model``, dense and at each rank candidate of ``s.format``.

    Candidates: :func:`elrt_core.lowrank.hw_ranks.candidate_ranks` (register-friendly sizes, at most
    ``max_sizes`` per rank entry, cheaper than dense). For each distinct :func:`~elrt_core.lowrank.hw_ranks.shape_key`
    the dense ``nn.Conv2d`` and a freshly initialized low-rank layer per candidate are timed in turns on
    one random batch of ``s.batch_size`` (medians of ``s.steps`` after ``s.warmup``; the variant's memory
    format; factored chains). ``s.flops_ratio``, ``s.reg`` and ``s.rank_rule`` play no part. The record's
    ``table_id`` is its content id; configs name it as ``rank_rule: hw:<table_id>``.
    """
    s.validate()
    _check_layer_variant(s, "rank tables")
    device, started, load = torch.device(s.device), time.time(), BackgroundLoad()
    torch.manual_seed(s.seed)
    cls, shape = lowrank.FORMATS[s.format], models.input_shape(s.model)
    dense = models.get(s.model)
    modules = dict(dense.named_modules())
    groups: dict[tuple, list] = {}
    for name, g in lowrank.convertible(dense, shape).items():
        groups.setdefault(shape_key(g), [name, g, 0])[2] += 1
    memory = torch.channels_last if s.channels_last else torch.contiguous_format
    shapes = []
    for name, g, n in groups.values():
        conv = modules[name].to(device, memory_format=memory)
        cands = candidate_ranks(cls, g, max_sizes)
        layers = [conv, *(cls.like(conv, r).to(device, memory_format=memory) for r in cands)]
        x = torch.randn(s.batch_size, g.in_channels, *g.in_hw, device=device).contiguous(memory_format=memory)
        times = in_turns([partial(layer_step, m, x) for m in layers], s.steps, s.warmup)
        shapes.append(
            {
                "in_channels": g.in_channels,
                "out_channels": g.out_channels,
                "kernel": list(g.kernel_size),
                "stride": list(g.stride),
                "padding": list(g.padding),
                "dilation": list(g.dilation),
                "in_hw": list(g.in_hw),
                "layers": n,
                "dense_macs": g.macs,
                "dense_params": g.params,
                "dense_ms": 1000 * times[0],
                "candidates": [
                    {"ranks": list(r), "macs": cls.cost(g, r)[0], "params": cls.cost(g, r)[1], "ms": 1000 * t}
                    for r, t in zip(cands, times[1:])
                ],
            }
        )
    settings = {k: v for k, v in asdict(s).items() if k not in ("flops_ratio", "reg", "rank_rule")}
    record = {
        "kind": "rank_table",
        **settings,
        "rank_sizes": max_sizes,
        "shapes": shapes,
        "provenance": record_provenance(s, device, started, load),
    }
    return {"kind": "rank_table", "table_id": table_id(record), **record}
