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
* **Where the time goes** (``breakdown``): per-module forward and backward times of convolutions
  (split into 1x1 factors, k x k convs and depthwise convs) and batch norm, measured with module
  hooks on the CPU, plus the optimizer step; the rest (activations, additions, pooling, loss,
  framework overhead) is "other". From the dense breakdown, the **Amdahl ceiling** is the
  speedup reached if only the converted convolutions became ``macs_ratio`` times faster.
"""

from __future__ import annotations

import statistics
import warnings
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import lowrank, models, records
from .cost import count
from .regularizers import REGULARIZERS, penalty

__all__ = ["BenchSettings", "speedup", "regularizer_overhead", "activation_bytes", "breakdown", "VARIANTS"]

VARIANTS = ("factored", "channels_last", "autotuned")
"""How both models run: ``factored`` (default memory format, low-rank layers as chains of convs),
``channels_last`` (both models in channels-last memory format), ``autotuned`` (channels-last, and
each low-rank layer computed the way measured fastest for training, then for inference; see
:func:`elrt_core.lowrank.autotune`)."""


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

    @property
    def channels_last(self) -> bool:
        return self.variant in ("channels_last", "autotuned")

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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Stepper:
    """One model with its optimizer and a fixed batch; ``train()``/``infer()`` time one step (s)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, reg: str = "none", reg_weight: float = 1e-3):
        self.model, self.x, self.y, self.reg, self.reg_weight = model, x, y, reg, reg_weight
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        self.gen = torch.Generator().manual_seed(0)

    def train(self) -> float:
        self.model.train()
        _sync(self.x.device)
        t0 = time.perf_counter()
        loss = F.cross_entropy(self.model(self.x), self.y)
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
        self.model(self.x)
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


def _conv_kind(m: nn.Conv2d) -> str:
    if m.groups > 1:
        return "conv_depthwise"
    return "conv_1x1" if m.kernel_size == (1, 1) else "conv_kxk"


def breakdown(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 3) -> dict[str, float]:
    """Share of a training step's time per part (sums to 1): convs by kind, batch norm, optimizer, other.

    Forward and backward time of each leaf conv/BN module is measured with forward and full-backward
    pre/post hooks (exact on the CPU, where ops run synchronously; on CUDA the shares are not reliable).
    """
    parts: dict[str, float] = {}
    stack: dict[tuple[int, str], float] = {}
    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            kind = _conv_kind(m)
        elif isinstance(m, nn.BatchNorm2d):
            kind = "batchnorm"
        else:
            continue

        def start(mod, *args, key=None, _kind=kind, _phase="fwd"):
            stack[(id(mod), _phase)] = time.perf_counter()

        def stop(mod, *args, _kind=kind, _phase="fwd"):
            t0 = stack.pop((id(mod), _phase), None)
            if t0 is not None:
                parts[_kind] = parts.get(_kind, 0.0) + time.perf_counter() - t0

        handles += [
            m.register_forward_pre_hook(lambda mod, inp, f=start: f(mod, _phase="fwd")),
            m.register_forward_hook(lambda mod, inp, out, f=stop: f(mod, _phase="fwd")),
            m.register_full_backward_pre_hook(lambda mod, g, f=start: f(mod, _phase="bwd")),
            m.register_full_backward_hook(lambda mod, gi, go, f=stop: f(mod, _phase="bwd")),
        ]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    total = 0.0
    try:
        model.train()
        warnings.filterwarnings("ignore", message="Full backward hook is firing")  # the first conv's input needs no grad
        for _ in range(steps):
            t0 = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t1 = time.perf_counter()
            opt.step()
            t2 = time.perf_counter()
            parts["optimizer"] = parts.get("optimizer", 0.0) + t2 - t1
            total += t2 - t0
    finally:
        for h in handles:
            h.remove()
    shares = {k: v / total for k, v in parts.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    for key in ("conv_kxk", "conv_1x1", "conv_depthwise", "batchnorm", "optimizer"):
        shares.setdefault(key, 0.0)
    shares["conv"] = shares["conv_kxk"] + shares["conv_1x1"] + shares["conv_depthwise"]
    return shares


def _models(s: BenchSettings, device: torch.device) -> tuple[nn.Module, nn.Module, tuple[int, int, int]]:
    torch.manual_seed(s.seed)
    shape = models.input_shape(s.model)
    dense = models.get(s.model)
    low = lowrank.convert(dense, s.format, flops_ratio=s.flops_ratio, input_shape=shape, init="scratch")
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
    steppers = [_Stepper(dense, x, y), _Stepper(low, x, y, s.reg)]
    choices: dict[str, Any] = {}
    if s.variant == "autotuned":
        choices["train"] = {n: impl for n, (impl, _) in lowrank.autotune(low, x, train=True).items()}
    train = _alternate(steppers, "train", s.steps, s.warmup)
    if s.variant == "autotuned":
        choices["inference"] = {n: impl for n, (impl, _) in lowrank.autotune(low, x, train=False).items()}
    infer = _alternate(steppers, "infer", s.steps, s.warmup)
    if s.variant == "autotuned":
        lowrank.set_impl(low, choices["train"])
    result: dict[str, Any] = {"kind": "speedup", **asdict(s), "macs_ratio": rep.macs_ratio,
                              "params_ratio": rep.params_ratio, "impl_choices": choices}
    for name, model, t_train, t_infer in (("dense", dense, train[0], infer[0]), ("lowrank", low, train[1], infer[1])):
        entry = {
            "train_step_ms": 1000 * t_train,
            "infer_ms": 1000 * t_infer,
            "train_images_per_s": s.batch_size / t_train,
            "activation_bytes": activation_bytes(model, x),
            "macs": count(model, shape).macs,
        }
        if device.type == "cpu":
            try:
                entry["breakdown"] = breakdown(model, x, y)
            except RuntimeError:  # module backward hooks refuse in-place activations (VGG's ReLU)
                entry["breakdown"] = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            steppers[0 if name == "dense" else 1].train()
            entry["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        result[name] = entry
    result["train_speedup"] = train[0] / train[1]
    result["infer_speedup"] = infer[0] / infer[1]
    result["memory_ratio"] = result["dense"]["activation_bytes"] / result["lowrank"]["activation_bytes"]
    share = (result["dense"].get("breakdown") or {}).get("conv", float("nan"))
    result["amdahl_ceiling"] = 1.0 / ((1 - share) + share / rep.macs_ratio)
    result["provenance"] = records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time())
    return result


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
    steppers = [_Stepper(low, x, y, reg) for reg in names]
    times = _alternate(steppers, "train", s.steps, s.warmup)
    own = _alternate(steppers, "regularize", s.steps, s.warmup)
    base = times[0]
    rows = [{"regularizer": n, "on": "+".join(on), "step_ms": round(1000 * t, 2), "overhead_pct": round(100 * (t / base - 1), 2),
             "penalty_ms": round(1000 * r, 3), "penalty_pct": round(100 * r / base, 2)}
            for n, t, r in zip(names, times, own)]
    return {"kind": "regularizer_overhead", **asdict(s), "rows": rows,
            "provenance": records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time())}
