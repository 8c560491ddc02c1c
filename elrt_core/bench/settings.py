"""What ``elrt bench`` measures (:class:`BenchSettings`), the models and batch it measures on, and
where its records go (:func:`record_name`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import lowrank, models, records
from ..config import RANK_RULE_PATTERN
from ..lowrank.recompute import LEVELS
from ..machine_load import BackgroundLoad
from ..regularizers import REGULARIZERS
from ..train.rank_rule import load_rank_table

__all__ = ["BenchSettings", "VARIANTS", "VARIANT_TEXT", "build_models", "random_batch", "record_name", "record_provenance"]

VARIANT_TEXT = {
    "factored": "default memory format; each low-rank layer runs as its chain of small convolutions",
    "channels_last": "both networks in channels-last memory format (how the accuracy runs train)",
    "autotuned": "channels-last, and each low-rank layer computed the way measured fastest for training, then for inference",
    "bf16": "channels-last under bfloat16 autocast (the `--amp` of training)",
    "compiled": "channels-last, each network wrapped in `torch.compile` (the compiling steps are not timed)",
    "folded_bn": "channels-last; inference on copies with every batch norm folded into the convolution before it (training as channels-last)",
}
"""How both networks run in a bench, in words (the book's glossary and ``elrt bench --help``). Every
variant treats dense and low-rank alike; ``autotuned``: :func:`elrt_core.lowrank.autotune`, ``folded_bn``:
:func:`elrt_core.lowrank.fold_batchnorm`."""

VARIANTS = tuple(VARIANT_TEXT)
"""The names of :data:`VARIANT_TEXT`."""


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. ``steps``: timed steps per model; ``warmup``: untimed steps first.
    ``recompute``: the recompute level of the low-rank layers (:data:`elrt_core.lowrank.recompute.LEVELS`;
    None: each format's default); the other levels are timed beside it. ``dense_compiled``: also time
    dense under ``torch.compile`` among the dense variants (compiling takes minutes on a CPU)."""

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
    recompute: str | None = None
    dense_compiled: bool = False

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
        if self.recompute is not None and self.recompute not in LEVELS:
            raise ValueError(f"unknown recompute level {self.recompute!r}; allowed: {', '.join(LEVELS)}")
        if RANK_RULE_PATTERN.fullmatch(self.rank_rule) is None:
            raise ValueError(
                f"rank_rule must be 'uniform' or 'hw:<table id>', got {self.rank_rule!r} (resolve 'hw' with resolve_rank_rule)"
            )


def build_models(s: BenchSettings, device: torch.device) -> tuple[nn.Module, nn.Module, tuple[int, int, int]]:
    torch.manual_seed(s.seed)
    shape = models.input_shape(s.model)
    dense = models.get(s.model)
    timing = None if s.rank_rule == "uniform" else load_rank_table(s.rank_rule)
    low = lowrank.convert(dense, s.format, flops_ratio=s.flops_ratio, input_shape=shape, init="scratch", timing=timing)
    memory = torch.channels_last if s.channels_last else torch.contiguous_format
    return dense.to(device, memory_format=memory), low.to(device, memory_format=memory), shape


def random_batch(s: BenchSettings, shape, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(s.seed)
    x = torch.randn(s.batch_size, *shape, generator=g).to(device)
    if s.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, 10, (s.batch_size,), generator=g).to(device)


def record_name(s: BenchSettings, measure: str = "speedup") -> str:
    """File name of a bench record: ``<model>-<what>-b<batch>-<variant>.json``, where ``what`` is
    ``<format>-ranktable`` (``measure="rank_table"``), ``regularizers`` or ``<format>-<ratio>x``
    (``-layers`` or ``-reference`` added for those measures), with ``-hw-<table id>`` for the
    hardware-aware ranks, ``-<reg>`` for a speedup timed with a regularizer and ``-recompute-<level>``
    for one whose low-rank step ran at a level given explicitly (``--recompute``)."""
    hw = "" if s.rank_rule == "uniform" else f"-hw-{s.rank_rule.removeprefix('hw:')}"
    if measure == "speedup" and s.reg != "none":
        hw += f"-{s.reg}"
    if measure == "speedup" and s.recompute is not None:
        hw += f"-recompute-{s.recompute}"
    if measure == "rank_table":
        kind = f"{s.format}-ranktable"
    elif measure == "regularizers":
        kind = f"regularizers{hw}"
    else:
        kind = f"{s.format}-{s.flops_ratio:g}x{hw}" + ({"layers": "-layers", "reference": "-reference"}.get(measure, ""))
    return f"{s.model}-{kind}-b{s.batch_size}-{s.variant}.json"


def record_provenance(s: BenchSettings, device: torch.device, started: float, load: BackgroundLoad) -> dict[str, Any]:
    """The provenance of a bench record measured from ``started`` (epoch seconds) to now, with the load
    other processes put on the machine meanwhile (:class:`elrt_core.machine_load.BackgroundLoad`)."""
    return records.provenance(device, seed=s.seed, profile="bench", started=started, ended=time.time(), extra=load.provenance())
