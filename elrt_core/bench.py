"""``elrt bench``: measured speed and memory of low-rank vs dense training and inference.

Method: one process builds the dense model and its low-rank version, warms both up, then times
training steps (forward, loss, backward, optimizer step, and the orthogonality penalty when asked)
and inference forward passes **alternating** dense and low-rank, so slow drifts of the machine
(other processes, thermal state) affect both alike. The reported times are medians. On CUDA every
timed region ends with a synchronization.

Also measured:

* **Activation memory** of a training step: bytes of the tensors autograd saves for the backward
  pass (``torch.autograd.graph.saved_tensors_hooks``), the part of training memory that depends
  on the architecture; on CUDA also the peak allocated memory.
* **Where the time goes** (``breakdown``): the time of each top-level operator of a training step,
  measured with ``torch.profiler`` on the CPU and summed per part: convolutions (forward and
  backward, split by kernel shape into 1x1 factors, k x k and depthwise), batch norm, ReLU,
  tensor additions (residual sums and the gradient sums at branch points), the optimizer; the
  rest is "other". From the dense breakdown, the **Amdahl ceiling** is the speedup reached if only
  the converted convolutions became ``macs_ratio`` times faster. On CUDA no breakdown is measured
  (operator CPU times are launch times there), and the ceiling is ``null``.

``--rank-rule`` says how the low-rank network's ranks were chosen (``uniform``, or ``hw:<id>`` for
the hardware-aware rule over a committed timing table, :mod:`elrt_core.lowrank.hw_ranks`), and
:func:`rank_table` measures such a table: every layer shape of a model, dense and at every
register-friendly rank candidate, forward + backward, in turns.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import lowrank, models, records
from .config import RANK_RULE_PATTERN
from .cost import count, trace_convs
from .lowrank.hw_ranks import TimingTable, candidate_ranks, shape_key, table_id
from .paths import project_root
from .regularizers import REGULARIZERS, penalty

__all__ = [
    "BenchSettings",
    "speedup",
    "regularizer_overhead",
    "layer_times",
    "aligned_ranks",
    "activation_bytes",
    "breakdown",
    "rank_table",
    "rank_tables",
    "load_rank_table",
    "resolve_rank_rule",
    "amdahl_ceiling",
    "record_name",
    "reference_speedup",
    "tltorch_model",
    "VARIANTS",
    "PARTS",
    "RANK_SIZES",
]

RANK_SIZES = 8
"""Rank sizes per rank entry that :func:`rank_table` times (see :func:`elrt_core.lowrank.hw_ranks.register_sizes`)."""

VARIANTS = ("factored", "channels_last", "autotuned", "bf16", "compiled", "folded_bn")
"""How both models run: ``factored`` (default memory format, low-rank layers as chains of convs),
``channels_last`` (both models in channels-last memory format), ``autotuned`` (channels-last, and
each low-rank layer computed the way measured fastest for training, then for inference; see
:func:`elrt_core.lowrank.autotune`), ``bf16`` (channels-last under bfloat16 autocast, the
``--amp`` of training), ``compiled`` (channels-last, each model wrapped in ``torch.compile``; the
first steps compile and are not timed), ``folded_bn`` (channels-last; inference runs on copies with
every batch norm folded into the convolution before it, :func:`elrt_core.lowrank.fold_batchnorm`;
training as ``channels_last``). Every variant treats dense and low-rank alike."""


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. ``steps``: timed steps per model; ``warmup``: untimed steps first."""

    model: str = "resnet20"
    format: str = "tucker2"
    flops_ratio: float = 2.0
    device: str = "cpu"
    batch_size: int = 128
    steps: int = 10
    warmup: int = 3
    variant: str = "channels_last"
    reg: str = "none"
    seed: int = 0
    rank_rule: str = "uniform"

    @property
    def channels_last(self) -> bool:
        return self.variant != "factored"

    @property
    def stepper_options(self) -> dict[str, bool]:
        """How the variant runs each network's steps: bfloat16 autocast, ``torch.compile``."""
        return {"autocast": self.variant == "bf16", "compiled": self.variant == "compiled"}

    def validate(self) -> None:
        if self.model not in models.MODELS:
            raise ValueError(f"unknown model {self.model!r}; allowed: {', '.join(models.MODELS)}")
        if self.format not in lowrank.FORMATS:
            raise ValueError(f"unknown format {self.format!r}; allowed: {', '.join(lowrank.FORMATS)}")
        if not self.flops_ratio > 1:
            raise ValueError(f"flops_ratio must be > 1, got {self.flops_ratio}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r}; allowed: cpu, cuda")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but no CUDA GPU is available")
        for name in ("batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; allowed: {', '.join(VARIANTS)}")
        if self.reg != "none" and self.reg not in REGULARIZERS:
            raise ValueError(f"unknown regularizer {self.reg!r}; allowed: none, {', '.join(REGULARIZERS)}")
        if RANK_RULE_PATTERN.fullmatch(self.rank_rule) is None:
            raise ValueError(
                f"rank_rule must be 'uniform' or 'hw:<table id>', got {self.rank_rule!r} (resolve 'hw' with resolve_rank_rule)"
            )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Stepper:
    """One model with its optimizer and a fixed batch; ``train()``/``infer()`` time one step (s).

    ``autocast``: run forward passes under bfloat16 autocast; ``compiled``: call the model through
    ``torch.compile`` (parameters, optimizer and penalty stay those of ``model``)."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        reg: str = "none",
        reg_weight: float = 1e-3,
        *,
        autocast: bool = False,
        compiled: bool = False,
    ):
        self.model, self.x, self.y, self.reg, self.reg_weight = model, x, y, reg, reg_weight
        self.forward = torch.compile(model) if compiled else model
        self.autocast = autocast
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        self.gen = torch.Generator().manual_seed(0)

    def context(self):
        if self.autocast:
            return torch.autocast(self.x.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train(self) -> float:
        self.model.train()
        _sync(self.x.device)
        t0 = time.perf_counter()
        with self.context():
            loss = F.cross_entropy(self.forward(self.x), self.y)
        if self.reg != "none":
            loss = loss + penalty(self.model, self.reg, self.reg_weight, generator=self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        _sync(self.x.device)
        return time.perf_counter() - t0

    def regularize(self) -> float:
        """Seconds of the penalty alone: its forward and backward (0 for ``reg="none"``)."""
        if self.reg == "none":
            return 0.0
        self.model.train()
        _sync(self.x.device)
        t0 = time.perf_counter()
        penalty(self.model, self.reg, self.reg_weight, generator=self.gen).backward()
        _sync(self.x.device)
        elapsed = time.perf_counter() - t0
        self.opt.zero_grad(set_to_none=True)
        return elapsed

    @torch.no_grad()
    def infer(self) -> float:
        self.model.eval()
        _sync(self.x.device)
        t0 = time.perf_counter()
        with self.context():
            self.forward(self.x)
        _sync(self.x.device)
        return time.perf_counter() - t0


def _alternate(steppers: list[_Stepper], what: str, steps: int, warmup: int) -> list[float]:
    """Median seconds per step of each stepper, timed in turns."""
    times: list[list[float]] = [[] for _ in steppers]
    for i in range(warmup + steps):
        for k, s in enumerate(steppers):
            t = getattr(s, what)()
            if i >= warmup:
                times[k].append(t)
    return [statistics.median(t) for t in times]


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
    shares["other"] = 1.0 - sum(shares.values())
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


def _models(s: BenchSettings, device: torch.device) -> tuple[nn.Module, nn.Module, tuple[int, int, int]]:
    torch.manual_seed(s.seed)
    shape = models.input_shape(s.model)
    dense = models.get(s.model)
    timing = None if s.rank_rule == "uniform" else load_rank_table(s.rank_rule)
    low = lowrank.convert(dense, s.format, flops_ratio=s.flops_ratio, input_shape=shape, init="scratch", timing=timing)
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    return dense.to(device, memory_format=fmt), low.to(device, memory_format=fmt), shape


def _batch(s: BenchSettings, shape, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(s.seed)
    x = torch.randn(s.batch_size, *shape, generator=g).to(device)
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, 10, (s.batch_size,), generator=g).to(device)


def speedup(s: BenchSettings) -> dict[str, Any]:
    """Dense vs low-rank training/inference step times, memory, breakdown and Amdahl ceiling (JSON-ready)."""
    s.validate()
    device = torch.device(s.device)
    started = time.time()
    dense, low, shape = _models(s, device)
    x, y = _batch(s, shape, device)
    rep = lowrank.report(low, shape)
    steppers = [_Stepper(dense, x, y, **s.stepper_options), _Stepper(low, x, y, s.reg, **s.stepper_options)]
    choices: dict[str, Any] = {}
    if s.variant == "autotuned":
        choices["train"] = {n: impl for n, (impl, _) in lowrank.autotune(low, x, train=True).items()}
    train = _alternate(steppers, "train", s.steps, s.warmup)
    if s.variant == "autotuned":
        choices["inference"] = {n: impl for n, (impl, _) in lowrank.autotune(low, x, train=False).items()}
    infer_steppers = steppers
    if s.variant == "folded_bn":
        infer_steppers = [_Stepper(lowrank.fold_batchnorm(st.model), x, y) for st in steppers]
    infer = _alternate(infer_steppers, "infer", s.steps, s.warmup)
    if s.variant == "autotuned":
        lowrank.set_impl(low, choices["train"])
    result: dict[str, Any] = {
        "kind": "speedup",
        **asdict(s),
        "macs_ratio": rep.macs_ratio,
        "params_ratio": rep.params_ratio,
        "impl_choices": choices,
    }
    for name, model, t_train, t_infer in (("dense", dense, train[0], infer[0]), ("lowrank", low, train[1], infer[1])):
        entry = {
            "train_step_ms": 1000 * t_train,
            "infer_ms": 1000 * t_infer,
            "train_images_per_s": s.batch_size / t_train,
            "macs": count(model, shape).macs,
        }
        with steppers[0].context():  # bf16: under autocast; compiled: these measure the eager model
            entry["activation_bytes"] = activation_bytes(model, x)
            if device.type == "cpu":
                entry["breakdown"] = breakdown(model, x, y)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            steppers[0 if name == "dense" else 1].train()
            entry["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        result[name] = entry
    result["train_speedup"] = train[0] / train[1]
    result["infer_speedup"] = infer[0] / infer[1]
    result["memory_ratio"] = result["dense"]["activation_bytes"] / result["lowrank"]["activation_bytes"]
    result["amdahl_ceiling"] = amdahl_ceiling(result["dense"].get("breakdown"), rep.macs_ratio)
    result["provenance"] = records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time())
    return result


def record_name(s: BenchSettings, measure: str = "speedup") -> str:
    """File name of a bench record: ``<model>-<what>-b<batch>-<variant>.json``, where ``what`` is
    ``<format>-ranktable`` (``measure="rank_table"``), ``regularizers`` or ``<format>-<ratio>x``
    (``-layers`` or ``-reference`` added for those measures), with ``-hw-<table id>`` for the
    hardware-aware ranks."""
    hw = "" if s.rank_rule == "uniform" else f"-hw-{s.rank_rule.removeprefix('hw:')}"
    if measure == "rank_table":
        kind = f"{s.format}-ranktable"
    elif measure == "regularizers":
        kind = f"regularizers{hw}"
    else:
        kind = f"{s.format}-{s.flops_ratio:g}x{hw}" + ({"layers": "-layers", "reference": "-reference"}.get(measure, ""))
    return f"{s.model}-{kind}-b{s.batch_size}-{s.variant}.json"


def regularizer_overhead(s: BenchSettings, on: tuple[str, ...] = ("U2",)) -> dict[str, Any]:
    """Training-step time of the low-rank model with each regularizer vs none (alternating, medians).

    Two measures per regularizer: ``overhead_pct``, the difference of whole-step medians (what a run
    feels, but within the step-to-step noise of a shared CPU), and ``penalty_pct``, the penalty's own
    forward + backward time as a share of the unregularized step (a direct, low-noise measure).
    """
    s.validate()
    device = torch.device(s.device)
    started = time.time()
    _, low, shape = _models(s, device)
    x, y = _batch(s, shape, device)
    names = ["none", *REGULARIZERS]
    steppers = [_Stepper(low, x, y, reg, **s.stepper_options) for reg in names]
    times = _alternate(steppers, "train", s.steps, s.warmup)
    own = _alternate(steppers, "regularize", s.steps, s.warmup)
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
        "provenance": records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time()),
    }


class _LayerStepper:
    """One conv layer and an input batch; ``train()`` times one forward + backward (s)."""

    def __init__(self, layer: nn.Module, x: torch.Tensor):
        self.layer, self.x = layer, x

    def train(self) -> float:
        x = self.x.detach().requires_grad_(True)
        _sync(x.device)
        t0 = time.perf_counter()
        self.layer(x).sum().backward()
        _sync(x.device)
        return time.perf_counter() - t0


def aligned_ranks(ranks: tuple[int, ...], full: tuple[int, ...]) -> tuple[int, ...]:
    """Each rank moved to the nearest of 8, 16, 32, 48, ... (multiples of 16, the fp32 lanes of an
    AVX-512 register, and 8 below 16; ties go down), at most its ``full`` rank; ranks below 6 stay."""

    def nearest(r: int, f: int) -> int:
        if r < 6:
            return r
        sizes = [v for v in [8, *range(16, f + 1, 16)] if v <= f] or [r]
        return min(sizes, key=lambda v: (abs(v - r), v))

    return tuple(nearest(r, f) for r, f in zip(ranks, full))


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
    if s.variant not in ("factored", "channels_last"):
        raise ValueError(f"layer times support the variants factored and channels_last, got {s.variant!r}")
    device = torch.device(s.device)
    started = time.time()
    dense, low, shape = _models(s, device)
    geoms = trace_convs(dense, shape)
    dense_mods, low_mods = dict(dense.named_modules()), dict(low.named_modules())
    groups: dict[tuple, dict[str, Any]] = {}
    for name, g in geoms.items():
        layer = low_mods.get(name)
        if not isinstance(layer, lowrank.LowRankConv2d):
            continue
        key = (g.in_channels, g.out_channels, g.kernel_size, g.stride, g.in_hw, layer.ranks)
        groups.setdefault(key, {"dense": dense_mods[name], "low": layer, "geom": g, "layers": 0})["layers"] += 1
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    rows = []
    for (c_in, c_out, kernel, stride, in_hw, ranks), grp in groups.items():
        g, layer = grp["geom"], grp["low"]
        aligned = aligned_ranks(ranks, type(layer).max_ranks(c_in, c_out, kernel))
        twin = type(layer).like(grp["dense"], aligned).to(device, memory_format=fmt)
        x = torch.randn(s.batch_size, c_in, *in_hw, device=device).contiguous(memory_format=fmt)
        t_dense, t_low, t_aligned = _alternate(
            [_LayerStepper(m, x) for m in (grp["dense"], layer, twin)], "train", s.steps, s.warmup
        )
        low_macs, aligned_macs = type(layer).cost(g, ranks)[0], type(layer).cost(g, aligned)[0]
        rows.append(
            {
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
        )

    def total(key: str) -> float:
        return sum(r[key] * r["layers"] for r in rows)

    totals = {
        "macs_ratio": total("dense_macs") / total("lowrank_macs"),
        "speedup": total("dense_ms") / total("lowrank_ms"),
        "aligned_macs_ratio": total("dense_macs") / total("aligned_macs"),
        "aligned_speedup": total("dense_ms") / total("aligned_ms"),
    }
    return {
        "kind": "layer_times",
        **asdict(s),
        "rows": rows,
        "totals": totals,
        "provenance": records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time()),
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
    if s.variant not in ("factored", "channels_last"):
        raise ValueError(f"rank tables support the variants factored and channels_last, got {s.variant!r}")
    device, started = torch.device(s.device), time.time()
    torch.manual_seed(s.seed)
    cls, shape = lowrank.FORMATS[s.format], models.input_shape(s.model)
    dense = models.get(s.model)
    modules = dict(dense.named_modules())
    groups: dict[tuple, list] = {}
    for name, g in lowrank.convertible(dense, shape).items():
        groups.setdefault(shape_key(g), [name, g, 0])[2] += 1
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    shapes = []
    for name, g, n in groups.values():
        conv = modules[name].to(device, memory_format=fmt)
        cands = candidate_ranks(cls, g, max_sizes)
        layers = [conv, *(cls.like(conv, r).to(device, memory_format=fmt) for r in cands)]
        x = torch.randn(s.batch_size, g.in_channels, *g.in_hw, device=device).contiguous(memory_format=fmt)
        times = _alternate([_LayerStepper(m, x) for m in layers], "train", s.steps, s.warmup)
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
        "provenance": records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time()),
    }
    return {"kind": "rank_table", "table_id": table_id(record), **record}


def _bench_folders(root: str | Path | None) -> list[Path]:
    """Where bench records live: ``<results>/bench`` and the study's committed ``results/bench``."""
    folders = [records.results_root(root) / "bench"]
    with contextlib.suppress(FileNotFoundError):
        folders.append(project_root() / "results" / "bench")
    return list(dict.fromkeys(f.resolve() for f in folders))


def rank_tables(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Every timing-table record (``kind: rank_table``) under the bench folders, with its ``path``."""
    found = {}
    for folder in _bench_folders(root):
        for path in sorted(folder.rglob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{path}: unreadable bench record ({e})") from None
            if isinstance(data, dict) and data.get("kind") == "rank_table":
                found.setdefault(data["table_id"], {**data, "path": str(path)})
    return list(found.values())


def load_rank_table(rule: str, root: str | Path | None = None) -> TimingTable:
    """The :class:`~elrt_core.lowrank.hw_ranks.TimingTable` named by ``rule`` (``"hw:<id>"``); a missing
    table is a ``FileNotFoundError`` naming the folders searched (a config that names a table never
    silently gets other ranks)."""
    wanted = rule.removeprefix("hw:")
    for data in rank_tables(root):
        if data["table_id"] == wanted:
            return TimingTable.from_record(data)
    raise FileNotFoundError(
        f"no timing table with id {wanted} under {', '.join(map(str, _bench_folders(root)))}: "
        "it is a committed `elrt bench --rank-table` record; restore it, or use rank_rule 'uniform'"
    )


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else records.cpu_name()


def resolve_rank_rule(
    rule: str, device: torch.device, fmt: str, model: str, batch_size: int | None = None, root: str | Path | None = None
) -> tuple[str, str | None]:
    """``(stored rule, note)`` for a requested rank rule: ``"uniform"`` and ``"hw:<id>"`` stay as they
    are; ``"hw"`` becomes ``"hw:<id>"`` of the newest timing table measured on this device (same device
    name) for ``fmt`` that covers every converted layer shape of ``model`` (one of batch
    ``batch_size`` first, if any), else ``"uniform"``: the fallback, said in the note."""
    if rule != "hw":
        return rule, None
    name = _device_name(device)
    geoms = lowrank.convertible(models.get(model), models.input_shape(model))
    usable = [
        d
        for d in rank_tables(root)
        if d["provenance"]["device_name"] == name and d["format"] == fmt and TimingTable.from_record(d).covers(geoms)
    ]
    if not usable:
        return "uniform", (
            f"rank rule hw: no timing table for {fmt} {model} layers measured on {name}; "
            "falling back to the uniform rank rule (`elrt bench --rank-table` measures one)"
        )
    best = max(usable, key=lambda d: (d["batch_size"] == batch_size, d["provenance"]["ended"]))
    return f"hw:{best['table_id']}", f"rank rule hw: timing table {best['table_id']} ({best['path']}, batch {best['batch_size']})"


def summary(result: dict[str, Any]) -> str:
    """What a bench record measured, in a few readable lines (``elrt bench`` prints this)."""
    if result["kind"] == "reference":
        t = result["train_step_ms"]
        return (
            f"{result['model']} tucker2 {result['macs_ratio']:.2f}x fewer MACs, {result['variant']}: training step dense "
            f"{t['dense']:.1f} ms, ours {t['ours']:.1f} ms ({result['ours_vs_dense']:.2f}x of dense speed), "
            f"{result['reference']} {t['reference']:.1f} ms ({result['reference_vs_dense']:.2f}x); ours is "
            f"{result['ours_vs_reference']:.2f}x the reference's speed"
        )
    if result["kind"] == "layer_times":
        lines = [
            f"{r['in_channels']}->{r['out_channels']} {r['kernel'][0]}x{r['kernel'][1]} stride {r['stride'][0]} "
            f"on {r['in_hw'][0]}x{r['in_hw'][1]} (x{r['layers']}): ranks {r['ranks']} {r['macs_ratio']:.2f}x fewer MACs, "
            f"{r['dense_ms']:.2f} -> {r['lowrank_ms']:.2f} ms ({r['speedup']:.2f}x); aligned ranks {r['aligned_ranks']} "
            f"{r['aligned_macs_ratio']:.2f}x fewer MACs, {r['aligned_ms']:.2f} ms ({r['aligned_speedup']:.2f}x)"
            for r in result["rows"]
        ]
        t = result["totals"]
        lines.append(
            f"all converted layers: {t['macs_ratio']:.2f}x fewer MACs, {t['speedup']:.2f}x faster; "
            f"aligned ranks: {t['aligned_macs_ratio']:.2f}x fewer MACs, {t['aligned_speedup']:.2f}x faster"
        )
        return "\n".join(lines)
    if result["kind"] == "rank_table":
        n = sum(len(x["candidates"]) for x in result["shapes"])
        return (
            f"timing table {result['table_id']}: {len(result['shapes'])} layer shapes of {result['model']}, "
            f"{n} {result['format']} rank candidates, on {result['provenance']['device_name']}; "
            f"use it with rank_rule 'hw:{result['table_id']}'"
        )
    if result["kind"] == "regularizer_overhead":
        return "\n".join(
            f"{row['regularizer']:>5} on {row['on']}: {row['step_ms']:.1f} ms/step ({row['overhead_pct']:+.1f}%); "
            f"penalty alone {row['penalty_ms']:.2f} ms ({row['penalty_pct']:.2f}% of the unregularized step)"
            for row in result["rows"]
        )
    d, lr = result["dense"], result["lowrank"]
    ceiling = "not measured (no breakdown)" if result["amdahl_ceiling"] is None else f"{result['amdahl_ceiling']:.2f}x"
    return (
        f"{result['model']} {result['format']} {result['macs_ratio']:.2f}x fewer MACs ({result.get('rank_rule', 'uniform')} ranks), "
        f"{result['variant']}, on "
        f"{result['provenance']['device_name']}: train step {d['train_step_ms']:.1f} -> {lr['train_step_ms']:.1f} ms "
        f"(speedup {result['train_speedup']:.2f}x), inference {result['infer_speedup']:.2f}x, activation memory "
        f"dense/low-rank {result['memory_ratio']:.2f}x, Amdahl ceiling {ceiling}"
    )


def tltorch_model(low: nn.Module) -> nn.Module:
    """A copy of the Tucker-2 network ``low`` whose low-rank layers are TensorLy-Torch's Tucker
    ``FactorizedConv`` (``implementation="factorized"``) at the same ranks ``(R2, R1)`` with the
    spatial modes at full rank (Kossaifi et al., TensorLy-Torch 0.5): the same network run by a
    reference library, for timing. Needs the optional dependency ``tensorly-torch``. Its layers compute
    with tensorly's pytorch backend: run them inside ``tensorly.backend_context("pytorch")``; the
    global backend is left as it was (importing tltorch would switch it)."""
    import copy

    import tensorly as tl

    backend = tl.get_backend()
    try:
        import tltorch
    except ImportError:
        raise ValueError("the reference measurement needs TensorLy-Torch: pip install -c constraints.txt -e '.[bench]'") from None
    finally:
        tl.set_backend(backend)  # importing tltorch sets tensorly's global backend to pytorch

    ref = copy.deepcopy(low)
    for name, layer in list(ref.named_modules()):
        if isinstance(layer, lowrank.Tucker2Conv2d):
            r1, r2 = layer.ranks
            dense = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                bias=layer.last.bias is not None,
            )
            fact = tltorch.FactorizedConv.from_conv(
                dense,
                rank=(r2, r1, *layer.kernel_size),
                factorization="tucker",
                implementation="factorized",
                decompose_weights=False,
            )
            parent, _, attr = name.rpartition(".")
            setattr(ref.get_submodule(parent) if parent else ref, attr, fact)
    return ref


def reference_speedup(s: BenchSettings) -> dict[str, Any]:
    """Training-step times of dense, this project's Tucker-2 network and the same network built from
    TensorLy-Torch layers (:func:`tltorch_model`), timed in turns in one process (medians): the
    ratios ``ours_vs_dense``, ``reference_vs_dense`` and ``ours_vs_reference`` (> 1: ours faster)."""
    s.validate()
    if s.format != "tucker2":
        raise ValueError(f"the TensorLy-Torch reference exists for tucker2 only, got format {s.format!r}")
    import tensorly as tl

    device = torch.device(s.device)
    started = time.time()
    dense, low, shape = _models(s, device)
    fmt = torch.channels_last if s.channels_last else torch.contiguous_format
    with tl.backend_context("pytorch"):
        ref = tltorch_model(low).to(device, memory_format=fmt)
        x, y = _batch(s, shape, device)
        steppers = [_Stepper(m, x, y, **s.stepper_options) for m in (dense, low, ref)]
        train = _alternate(steppers, "train", s.steps, s.warmup)
    return {
        "kind": "reference",
        **asdict(s),
        "macs_ratio": lowrank.report(low, shape).macs_ratio,
        "reference": f"tensorly-torch {_package_version('tensorly-torch')} FactorizedConv (tucker, factorized)",
        "train_step_ms": {"dense": 1000 * train[0], "ours": 1000 * train[1], "reference": 1000 * train[2]},
        "ours_vs_dense": train[0] / train[1],
        "reference_vs_dense": train[0] / train[2],
        "ours_vs_reference": train[2] / train[1],
        "provenance": records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time()),
    }


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)
