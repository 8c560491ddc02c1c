"""The training configuration: every setting that defines an experiment, validated and hashed.

A :class:`TrainConfig` names a run: its :attr:`~TrainConfig.hash` (sha256 of the canonical JSON of
all fields) is how :mod:`elrt_core.records` finds an existing run instead of training again.
Settings that change *how* a run executes but not *what* it computes (device, output folder, data
folder, progress bars, ``torch.compile``, bf16 autocast on GPU, channels-last) live in
:class:`RunOptions` and are recorded in the run's provenance instead.

Fields added after the first records were written (:data:`ADDED_FIELDS`) leave the hash out while
they hold the value that reproduces the old behaviour, so every earlier record keeps its identity.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from . import models
from .data.layouts import DATASETS
from .lowrank import FORMATS
from .regularizers import REGULARIZERS

__all__ = [
    "TrainConfig",
    "RunOptions",
    "ConfigError",
    "SCHEDULES",
    "REG_SCHEDULES",
    "FACTOR_NAMES",
    "DATASETS",
    "ADDED_FIELDS",
    "RANK_RULE_PATTERN",
    "FACTOR_DECAYS",
    "INITS",
    "INIT_PATTERN",
    "MAX_SEED",
]

SCHEDULES = ("cosine", "step", "onecycle")
REG_SCHEDULES = ("constant", "bansal")
FACTOR_DECAYS = ("factors", "frobenius", "none")
INITS = ("scratch", "spectral", "decompose:<config hash of a finished dense run>")
INIT_PATTERN = re.compile(r"scratch|spectral|decompose:[0-9a-f]{16}")
FACTOR_NAMES = ("U1", "U2")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
MAX_SEED = 2**32 - 1
"""The largest seed: every generator a run seeds from it (NumPy's, PyTorch's, SRIP's per epoch) accepts it."""
SPLIT_SIZES = {"cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000)}
"""Images in the official training and test sets of each data set."""

ADDED_FIELDS = {
    "val_split": 0,
    "orth_init": (),
    "no_decay_on": (),
    "rank_rule": "uniform",
    "factor_decay": "factors",
    "init": "scratch",
}
"""Fields added after schema 1, with the value that reproduces runs made before they existed: at that
value a field is left out of :attr:`TrainConfig.hash`."""


RANK_RULE_PATTERN = re.compile(r"uniform|hw:[0-9a-f]{12}")
"""Stored rank rules: ``uniform`` or ``hw:<id>``, the hardware-aware rule over the timing table of that
content id (:func:`elrt_core.lowrank.hw_ranks.table_id`); ``hw`` alone is resolved before a config is made."""


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting, the bad value and what is allowed."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _choice(what: str, value: Any, allowed: Iterable[str]) -> None:
    """``value`` is one of the strings ``allowed`` (a list or a mapping from YAML is refused, never looked up)."""
    allowed = tuple(allowed)
    _require(isinstance(value, str) and value in allowed, f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")


def _switch(name: str, value: Any) -> None:
    """``value`` is a boolean: a YAML string such as ``"false"`` or ``"no"`` is an error, not a true value."""
    _require(isinstance(value, bool), f"{name} must be true or false, got {value!r}")


def _number(name: str, value: Any) -> None:
    _require(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        f"{name} must be a finite number, got {value!r}",
    )


@dataclass(frozen=True)
class TrainConfig:
    """One training experiment (model, low-rank format and budget, regularizer, optimization, data).

    Weight decay applies to every conv/linear weight, low-rank factors included; batch-norm
    parameters and biases are not decayed, nor are the factors named in ``no_decay_on``.
    ``batch_size`` is the global batch (split over processes under ``torchrun``).

    Data: ``val_split`` training images (class-balanced, drawn with the fixed
    :data:`elrt_core.data.VALIDATION_SEED`, so every run holds out the same images) are held out as
    the validation split, evaluated every epoch and used for every choice; the test set is only
    reported. ``subset``: train on a seeded (``seed``), class-balanced subset of this many of the
    remaining images; ``test_subset``: evaluate on a class-balanced test subset (``None``: all).

    ``orth_init``: factors (``"U1"``, ``"U2"``) drawn with orthonormal rows of their thin side
    instead of Kaiming-variance normals (a control: orthogonality at the start, no penalty).

    ``factor_decay``: how weight decay reaches the convolutions of a low-rank layer: ``"factors"`` (SGD
    decay on every factor, as on any conv weight), ``"none"`` (no decay on them) or ``"frobenius"``
    (no decay on the factors; ``weight_decay / 2 * ||K||_F^2`` of each reconstructed kernel ``K`` added to
    the loss instead: Frobenius decay, Khodak et al., *Initialization and Regularization of Factorized
    Neural Layers*, ICLR 2021, Sec. 3).

    ``init``: ``"scratch"`` (independent Kaiming-variance factors, :mod:`elrt_core.lowrank.layers`),
    ``"spectral"`` (the best fit in the format of a standard Kaiming-initialized dense kernel drawn from
    ``seed``: for the matrix formats its truncated SVD, split as ``U sqrt(S)``, ``sqrt(S) V^T``; Khodak et al.
    2021, spectral initialization) or ``"decompose:<hash>"`` (the compression baseline: the best fit in the
    format of the trained kernels of the finished dense run with that config hash, then trained further
    with this config's schedule; the run reads the dense run's ``weights.pt`` beside its own folder).

    ``rank_rule``: how ranks meet the budget: ``"uniform"`` (every layer reduced alike,
    :func:`elrt_core.lowrank.convert.select_ranks`) or ``"hw:<table id>"`` (register-friendly ranks
    allocated by the measured times of that committed timing table, :mod:`elrt_core.lowrank.hw_ranks`).
    """

    model: str = "resnet20"
    dataset: str = "cifar10"
    format: str = "dense"
    flops_ratio: float | None = None
    params_ratio: float | None = None
    reg: str = "none"
    reg_weight: float = 0.0
    reg_on: tuple[str, ...] = ("U2",)
    reg_per_rank: bool = False
    reg_schedule: str = "constant"
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    subset: int | None = None
    test_subset: int | None = None
    val_split: int = 0
    orth_init: tuple[str, ...] = ()
    no_decay_on: tuple[str, ...] = ()
    rank_rule: str = "uniform"
    factor_decay: str = "factors"
    init: str = "scratch"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("reg_on", "orth_init", "no_decay_on"):
            value = getattr(self, name)
            _require(
                isinstance(value, (str, list, tuple)) and all(isinstance(v, str) for v in value),
                f"{name} must be a factor name or a list of them, got {value!r}",
            )
            object.__setattr__(self, name, tuple([value] if isinstance(value, str) else value))
        for f in fields(self):  # 0 and 0.0 are one setting, so they must give one hash
            value = getattr(self, f.name)
            if f.type in ("float", "float | None") and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for the first invalid setting."""
        self._validate_network()
        self._validate_regularizer()
        self._validate_optimization()
        self._validate_data()

    def _validate_network(self) -> None:
        _choice("model", self.model, models.MODELS)
        _choice("format", self.format, ("dense", *FORMATS))
        ratios = {k: v for k, v in (("flops_ratio", self.flops_ratio), ("params_ratio", self.params_ratio)) if v is not None}
        for k, v in ratios.items():
            _number(k, v)
            _require(v > 1, f"{k} must be > 1 (dense cost / low-rank cost), got {v}")
        if self.format == "dense":
            _require(not ratios, f"a dense model takes no reduction ratio, got {ratios}")
        else:
            _require(len(ratios) == 1, f"format {self.format!r} needs exactly one of flops_ratio, params_ratio")
        _require(
            self.rank_rule == "uniform" or self.format != "dense",
            f"rank_rule {self.rank_rule!r} chooses low-rank ranks: choose a low-rank format",
        )
        _require(
            isinstance(self.rank_rule, str) and RANK_RULE_PATTERN.fullmatch(self.rank_rule) is not None,
            f"rank_rule must be 'uniform' or 'hw:<12 hex digits of a timing table id>', got {self.rank_rule!r} "
            "('hw' alone is resolved to this device's table by `elrt train --rank-rule hw`)",
        )
        for name in ("orth_init", "no_decay_on"):
            value = getattr(self, name)
            bad = [f for f in value if f not in FACTOR_NAMES]
            _require(
                not bad and len(set(value)) == len(value),
                f"{name} must name distinct factors among {FACTOR_NAMES}, got {value!r}",
            )
            _require(
                not value or self.format == "tucker2",
                f"{name} acts on Tucker-2 factors: format must be tucker2, got {self.format!r}",
            )
        _choice("factor_decay", self.factor_decay, FACTOR_DECAYS)
        _require(
            isinstance(self.init, str) and INIT_PATTERN.fullmatch(self.init) is not None,
            f"unknown init {self.init!r}; allowed: {', '.join(INITS)}",
        )
        for name, default in (("factor_decay", "factors"), ("init", "scratch")):
            _require(
                getattr(self, name) == default or self.format != "dense",
                f"{name} {getattr(self, name)!r} acts on low-rank factors: choose a low-rank format",
            )
        _require(
            not self.no_decay_on or self.factor_decay == "factors",
            f"no_decay_on {self.no_decay_on!r} exempts single factors from per-factor decay; "
            f"factor_decay {self.factor_decay!r} already decides every factor",
        )
        _require(
            not (self.orth_init and self.init != "scratch"),
            f"orth_init redraws factors from scratch; it cannot combine with init {self.init!r}",
        )

    def _validate_regularizer(self) -> None:
        _choice("regularizer", self.reg, ("none", *REGULARIZERS))
        _switch("reg_per_rank", self.reg_per_rank)
        _number("reg_weight", self.reg_weight)
        _require(self.reg_weight >= 0, f"reg_weight must be >= 0, got {self.reg_weight}")
        if self.reg != "none":
            _require(self.format != "dense", f"regularizer {self.reg!r} acts on low-rank factors: choose a low-rank format")
            _require(self.reg_weight > 0, f"regularizer {self.reg!r} needs reg_weight > 0")
        bad = [f for f in self.reg_on if f not in FACTOR_NAMES]
        _require(not bad and self.reg_on, f"reg_on must name factors among {FACTOR_NAMES}, got {self.reg_on!r}")
        _choice("reg_schedule", self.reg_schedule, REG_SCHEDULES)

    def _validate_optimization(self) -> None:
        for name in ("epochs", "batch_size", "seed"):
            v = getattr(self, name)
            _require(isinstance(v, int) and not isinstance(v, bool), f"{name} must be an integer, got {v!r}")
        _require(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        _require(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        _require(0 <= self.seed <= MAX_SEED, f"seed must be in [0, {MAX_SEED}], got {self.seed}")
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing"):
            _number(name, getattr(self, name))
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _require(0 <= self.warmup_epochs < self.epochs, f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")
        _require(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        _choice("schedule", self.schedule, SCHEDULES)
        _switch("nesterov", self.nesterov)

    def _validate_data(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        for name in ("subset", "test_subset"):
            v = getattr(self, name)
            _require(
                v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
                f"{name} must be a positive integer or None, got {v!r}",
            )
        v = self.val_split
        _require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f"val_split must be an integer >= 0, got {v!r}")
        n_train, n_test = SPLIT_SIZES[self.dataset]
        _require(v < n_train, f"val_split {v} must be smaller than the {n_train} training images")
        _require(
            self.subset is None or self.subset <= n_train - v,
            f"subset {self.subset} is larger than the {n_train - v} training images left after holding out {v}",
        )
        _require(
            self.test_subset is None or self.test_subset <= n_test,
            f"test_subset {self.test_subset} is larger than the {n_test} test images",
        )

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES[self.dataset]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return models.input_shape(self.model)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        d = asdict(self)
        for name in ("reg_on", "orth_init", "no_decay_on"):
            d[name] = list(d[name])
        return d

    @property
    def decomposes(self) -> str | None:
        """The config hash of the trained dense run a compression run starts from (``init ==
        "decompose:<hash>"``); ``None`` for any other ``init``."""
        return self.init.split(":", 1)[1] if self.init.startswith("decompose:") else None

    @property
    def hash(self) -> str:
        """First 16 hex digits of the sha256 of the canonical JSON of :meth:`to_dict`, without the
        :data:`ADDED_FIELDS` that hold their old-behaviour value."""
        d = {k: v for k, v in self.to_dict().items() if k not in ADDED_FIELDS or getattr(self, k) != ADDED_FIELDS[k]}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """A readable run name: ``model-format[-ratio]-reg-sSEED-hash8``."""
        parts = [self.model, self.format]
        if self.flops_ratio is not None:
            parts.append(f"{self.flops_ratio:g}xflops")
        if self.params_ratio is not None:
            parts.append(f"{self.params_ratio:g}xparams")
        if self.reg != "none":
            parts.append(f"{self.reg}-{'+'.join(self.reg_on)}" + ("-perrank" if self.reg_per_rank else ""))
        if self.orth_init:
            parts.append(f"orthinit-{'+'.join(self.orth_init)}")
        if self.no_decay_on:
            parts.append(f"nowd-{'+'.join(self.no_decay_on)}")
        if self.rank_rule != "uniform":
            parts.append("hwranks")
        if self.factor_decay != "factors":
            parts.append({"none": "nodecay", "frobenius": "frobdecay"}[self.factor_decay])
        if self.init != "scratch":
            parts.append("compressed" if self.init.startswith("decompose:") else f"{self.init}init")
        parts += [f"s{self.seed}", self.hash[:8]]
        return "-".join(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Strict parse: unknown keys are an error (a record written by another version is reported)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; allowed: {sorted(known)}")
        data = dict(data)
        try:
            return cls(**data)
        except TypeError as e:  # pragma: no cover - dataclass signature errors
            raise ConfigError(str(e)) from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class RunOptions:
    """How to execute a run (not part of the config hash; recorded in provenance).

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``. ``amp``: bf16 autocast
    on CUDA (ignored on CPU). ``channels_last``: channels-last memory format (CPU and CUDA).
    ``profile``: name of the profile the run belongs to (provenance only). ``notes``: lines for the
    record's provenance (e.g. which timing table ``--rank-rule hw`` resolved to, or its fallback). ``resume``/``force``:
    what to do with what the run folder already holds (see :mod:`elrt_core.train.run_folder`).
    ``recompute``: how much low-rank layers recompute in backward instead of keeping for it, one of
    :data:`elrt_core.lowrank.recompute.LEVELS` (``"off"`` turns it off), or None for each format's
    default; the results are bitwise the same whatever it is.
    """

    out: Path = Path("runs/default")
    device: str = "auto"
    data_dir: Path | None = None
    resume: bool = False
    force: bool = False
    quiet: bool = False
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    profile: str = "custom"
    threads: int | None = None
    notes: tuple[str, ...] = ()
    recompute: str | None = None
