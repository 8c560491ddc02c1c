"""Dense vs low-rank in one process (:func:`speedup`): training-step times in turns against the same
dense variant and the fastest dense variant, each recompute level of the low-rank layers, inference
times, memory of a step, and where the step's time goes."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from .. import lowrank
from ..cost import count
from ..lowrank.recompute import LEVELS
from ..machine_load import BackgroundLoad
from ..timing import in_turns, timed_turns
from .memory import activation_bytes, peak_step_bytes, state_bytes
from .profiling import breakdown
from .settings import BenchSettings, build_models, random_batch, record_provenance
from .steppers import Stepper

__all__ = ["speedup", "DENSE_LAYOUTS"]

DENSE_LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
"""The eager fp32 dense variants every speedup times beside the run's own variant: the two memory formats."""

Log = Callable[[str], None]


def _silent(_: str) -> None:
    """The default progress log: nothing."""


def _dense_name(s: BenchSettings) -> str:
    """The name of the run's own dense variant among :func:`_dense_steppers` (``factored`` runs NCHW)."""
    return "nchw" if s.variant == "factored" else s.variant


def _dense_steppers(s: BenchSettings, dense: nn.Module, x: torch.Tensor, y: torch.Tensor, log: Log) -> dict[str, Stepper]:
    """The dense variants to time: the run's own first, then NCHW and channels-last fp32 eager where
    the run's is neither, then (``s.dense_compiled``) channels-last under ``torch.compile`` where it
    compiles on this machine (else left out, with a line in the log)."""
    steppers = {_dense_name(s): Stepper(dense, x, y, **s.stepper_options)}
    for name, memory in DENSE_LAYOUTS.items():
        if name not in steppers:
            steppers[name] = Stepper(copy.deepcopy(dense).to(memory_format=memory), x.contiguous(memory_format=memory), y)
    if s.dense_compiled and "compiled" not in steppers:
        xc = x.contiguous(memory_format=torch.channels_last)
        compiled = Stepper(copy.deepcopy(dense).to(memory_format=torch.channels_last), xc, y, compiled=True)
        log("compiling dense (torch.compile; minutes on a CPU)")
        try:
            compiled.train()
            steppers["compiled"] = compiled
        except Exception as e:  # noqa: BLE001 - any compiler failure means: no compiled variant on this machine
            log(f"torch.compile failed here, dense is timed without it: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return steppers


def _lowrank_steppers(s: BenchSettings, low: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Stepper]:
    """The low-rank network at its recompute level (``s.recompute``, else each format's default) first,
    then a copy at each other level of :data:`LEVELS`."""
    lowrank.set_recompute(low, s.recompute)
    level = _level(low)
    steppers = {level: Stepper(low, x, y, s.reg, **s.stepper_options)}
    for other in LEVELS:
        if other != level:
            twin = lowrank.set_recompute(copy.deepcopy(low), other)
            steppers[other] = Stepper(twin, x, y, s.reg, **s.stepper_options)
    return steppers


def _level(model: nn.Module) -> str:
    """The recompute level of the model's low-rank layers (one level, or ``mixed``)."""
    levels = {m.recompute for m in model.modules() if isinstance(m, lowrank.LowRankConv2d)}
    return levels.pop() if len(levels) == 1 else "mixed"


def _times(rounds: list[float]) -> dict[str, Any]:
    """Median step and every timed round (ms); round ``i`` pairs with round ``i`` of every other stepper."""
    return {"train_step_ms": 1000 * statistics.median(rounds), "train_rounds_ms": [1000 * t for t in rounds]}


def _memory(stepper: Stepper, device: torch.device) -> dict[str, Any]:
    """Activation bytes kept for backward and the step's peak memory of one stepper's network."""
    with stepper.context():  # bf16: under autocast; compiled: these measure the eager model
        kept = activation_bytes(stepper.model, stepper.x)
    return {"activation_bytes": kept, "peak_step_bytes": peak_step_bytes(stepper.train_step, device)}


def _entry(stepper: Stepper, rounds: list[float], t_infer: float, shape, device: torch.device, batch: int) -> dict[str, Any]:
    """One network's part of the record: times, MACs, memory, state bytes and (CPU) the step's breakdown."""
    entry = {**_times(rounds), "infer_ms": 1000 * t_infer, "macs": count(stepper.model, shape).macs}
    entry["train_images_per_s"] = batch / (entry["train_step_ms"] / 1000)
    entry.update(_memory(stepper, device))
    state = state_bytes(stepper.model, stepper.opt)
    entry.update(param_bytes=state["params"], optimizer_bytes=state["optimizer"])
    if device.type == "cpu":
        entry["breakdown"] = breakdown(stepper.train_step)
    return entry


def _inference(s: BenchSettings, dense: Stepper, low: Stepper, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Median inference seconds of dense and low-rank, in turns (``folded_bn``: on folded copies)."""
    pair = [dense, low]
    if s.variant == "folded_bn":
        pair = [Stepper(lowrank.fold_batchnorm(st.model), x, y) for st in pair]
    return in_turns([st.infer for st in pair], s.steps, s.warmup)


def speedup(s: BenchSettings, log: Log = _silent) -> dict[str, Any]:
    """Dense vs low-rank training and inference, in one process (JSON-ready record).

    Training steps of every dense variant of :func:`_dense_steppers` and of the low-rank network at
    each recompute level (:func:`_lowrank_steppers`) are timed in turns (``s.steps`` rounds after
    ``s.warmup``). ``dense`` and ``lowrank`` describe the run's own dense variant and the low-rank
    network at its level; ``train_speedup`` is their ratio of medians, ``train_speedup_best`` the
    ratio to the fastest dense variant (``best_dense``). ``memory_ratio``: dense / low-rank activation
    bytes. ``log`` receives progress lines.
    """
    s.validate()
    device = torch.device(s.device)
    started, load = time.time(), BackgroundLoad()
    dense, low, shape = build_models(s, device)
    log(f"{s.model}: dense and {s.format} at {s.flops_ratio:g}x fewer MACs ({s.rank_rule} ranks), batch {s.batch_size}")
    x, y = random_batch(s, shape, device)
    rep = lowrank.report(low, shape)
    choices: dict[str, Any] = {}
    if s.variant == "autotuned":
        choices["train"] = {n: impl for n, (impl, _) in lowrank.autotune(low, x, train=True).items()}
    dense_st, low_st = _dense_steppers(s, dense, x, y, log), _lowrank_steppers(s, low, x, y)
    steppers = {**{f"dense:{k}": v for k, v in dense_st.items()}, **{f"lowrank:{k}": v for k, v in low_st.items()}}
    log(f"timing {len(steppers)} training steps in turns ({', '.join(steppers)}): {s.warmup} + {s.steps} rounds")
    rounds = dict(zip(steppers, timed_turns([st.train for st in steppers.values()], s.steps, s.warmup)))
    same, level = _dense_name(s), next(iter(low_st))
    if s.variant == "autotuned":
        choices["inference"] = {n: impl for n, (impl, _) in lowrank.autotune(low, x, train=False).items()}
    log("timing inference in turns")
    t_infer = _inference(s, dense_st[same], low_st[level], x, y)
    if s.variant == "autotuned":
        lowrank.set_impl(low, choices["train"])
    log("measuring memory and the step breakdown")
    result = _record(s, rep, choices, dense_st, low_st, rounds, t_infer, shape, device)
    result["provenance"] = record_provenance(s, device, started, load)
    return result


def _record(
    s: BenchSettings,
    rep: lowrank.ConversionReport,
    choices: dict[str, Any],
    dense_st: dict[str, Stepper],
    low_st: dict[str, Stepper],
    rounds: dict[str, list[float]],
    t_infer: list[float],
    shape: tuple[int, int, int],
    device: torch.device,
) -> dict[str, Any]:
    """The speedup record from the timed rounds (see :func:`speedup`)."""
    same, level = _dense_name(s), next(iter(low_st))
    dense = _entry(dense_st[same], rounds[f"dense:{same}"], t_infer[0], shape, device, s.batch_size)
    low = {**_entry(low_st[level], rounds[f"lowrank:{level}"], t_infer[1], shape, device, s.batch_size), "recompute": level}
    variants = {k: _times(rounds[f"dense:{k}"]) for k in dense_st}
    best = min(variants, key=lambda k: variants[k]["train_step_ms"])
    levels = {k: {**_times(rounds[f"lowrank:{k}"]), **(_memory(st, device) if k != level else {})} for k, st in low_st.items()}
    levels[level].update(activation_bytes=low["activation_bytes"], peak_step_bytes=low["peak_step_bytes"])
    return {
        "kind": "speedup",
        **asdict(s),
        "macs_ratio": rep.macs_ratio,
        "params_ratio": rep.params_ratio,
        "impl_choices": choices,
        "dense": dense,
        "lowrank": low,
        "dense_variants": variants,
        "best_dense": best,
        "lowrank_levels": levels,
        "train_speedup": dense["train_step_ms"] / low["train_step_ms"],
        "train_speedup_best": variants[best]["train_step_ms"] / low["train_step_ms"],
        "infer_speedup": t_infer[0] / t_infer[1],
        "memory_ratio": dense["activation_bytes"] / low["activation_bytes"],
        "memory_source": "cuda_allocator" if device.type == "cuda" else "resident_set",
    }
