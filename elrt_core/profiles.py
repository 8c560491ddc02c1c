"""Methods and profiles of the study (``profiles.yaml``), parsed into validated dataclasses.

A :class:`Method` is a named set of :class:`~elrt_core.config.TrainConfig` fields (format,
regularizer, ...); a :class:`Profile` is the scale of a study: shared training settings, the
:class:`RunGroup` s to train in priority order, the approximation analysis, and the comparisons each
chapter makes. :meth:`Profile.config` turns (method, model, budget, seed) into the run's config, with
lambda from :mod:`elrt_core.calibration`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from . import calibration
from .config import SPLIT_SIZES, ConfigError, TrainConfig

__all__ = [
    "Method",
    "RunGroup",
    "Approximation",
    "Comparison",
    "Profile",
    "Regime",
    "load",
    "names",
    "same_data",
    "methods",
    "regime",
    "PROFILES_FILE",
]

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(f"{PROFILES_FILE.name}: {message}")


def _take(spec: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """``spec`` as a dict with exactly the ``required`` keys and some ``optional`` ones."""
    _require(isinstance(spec, dict), f"{where} must be a mapping, got {type(spec).__name__}")
    missing = [k for k in required if k not in spec]
    unknown = sorted(set(spec) - set(required) - set(optional))
    _require(not missing and not unknown, f"{where}: missing {missing}, unknown {unknown}; allowed: {[*required, *optional]}")
    return spec


@dataclass(frozen=True)
class Method:
    """A method of the study: its ``key`` (as in the file), a readable ``label``, the TrainConfig
    ``fields`` it sets, and ``reg_weight_scale``, the multiple of the calibrated lambda it trains with.
    ``init: dense`` in ``fields`` names a compression baseline: the profile's run of the dense method
    ``dense_method`` (``"dense"`` unless the file says otherwise) on the same model and seed, decomposed
    (see :meth:`Profile.config`)."""

    key: str
    label: str
    fields: Mapping[str, Any]
    reg_weight_scale: float = 1.0
    dense_method: str = "dense"

    @property
    def format(self) -> str:
        return self.fields.get("format", "dense")

    @property
    def dense(self) -> bool:
        return self.format == "dense"


@dataclass(frozen=True)
class RunGroup:
    """Runs to train: every ``method`` on ``model`` at ``flops_ratio`` (ignored by dense) for every seed."""

    priority: int
    model: str
    flops_ratio: float
    methods: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Approximation:
    """Figure 3: the trained dense ``model`` whose kernels are approximated in each format at each
    per-layer reduction of ``ratios`` (of MACs, and of parameters), and at each MAC reduction of
    ``curve_ratios`` for the error-versus-MACs curves (empty: no curves). ``smallest_effect``: the
    smallest difference in relative error of interest (claim 1's verdict); ``beyond_paper``: the formats
    the paper does not compare Tucker-2 with (own words, never the row's)."""

    model: str
    ratios: tuple[float, ...]
    formats: tuple[str, ...]
    curve_ratios: tuple[float, ...] = ()
    smallest_effect: float | None = None
    beyond_paper: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comparison:
    """Methods compared with a ``reference`` on one network (``model`` and ``flops_ratio``; both
    ``None`` for comparisons made at every network of the profile, like the main table). A two-way
    comparison names its ``treatment`` (also in ``methods``); the main table its ``headline`` method.
    ``smallest_effect``: the smallest effect of interest, declared before the results it judges (in the
    unit of the compared metric: accuracy points); an interval inside ``±`` it reads *no meaningful
    effect*. ``beyond_paper``: compared methods the paper does not compare with (the book's extensions
    and ablations): each gets its own word, but none decides the row's word."""

    reference: str
    methods: tuple[str, ...]
    model: str | None = None
    flops_ratio: float | None = None
    headline: str | None = None
    treatment: str | None = None
    smallest_effect: float | None = None
    beyond_paper: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """One profile: shared training settings, run groups, and the knobs of each chapter."""

    name: str
    description: str
    train: Mapping[str, Any]
    runs: tuple[RunGroup, ...]
    approximation: Approximation
    comparisons: Mapping[str, Comparison] = field(default_factory=dict)

    def base_config(self, **fields: Any) -> TrainConfig:
        """A :class:`TrainConfig` with this profile's training settings and ``fields`` on top."""
        return TrainConfig.from_dict({**self.train, **fields})

    def config(self, method: str, model: str, flops_ratio: float, seed: int) -> TrainConfig:
        """The config of ``method`` on ``model`` at ``flops_ratio`` fewer MACs (ignored for dense) and
        ``seed``; a regularized method gets the calibrated lambda of that network times its scale."""
        m = methods()[method]
        fields = {**m.fields, "model": model, "seed": seed}
        if not m.dense:
            fields["flops_ratio"] = flops_ratio
        if fields.get("init") == "dense":  # a compression baseline: this profile's dense run of the same seed
            fields["init"] = f"decompose:{self.config(m.dense_method, model, flops_ratio, seed).hash}"
        if fields.get("reg", "none") != "none":
            fields["reg_weight"] = m.reg_weight_scale * calibration.reg_weight(calibration.RegSetting.of(fields))
        return self.base_config(**fields)

    def reg_settings(self) -> set[calibration.RegSetting]:
        """The regularizer setting of every regularized run the profile trains, read from its methods and
        run groups without looking up any lambda (what ``elrt calibrate`` computes the lambdas of)."""
        out = set()
        for group in self.runs:
            for key in group.methods:
                fields = {**methods()[key].fields, "model": group.model, "flops_ratio": group.flops_ratio}
                if fields.get("reg", "none") != "none":
                    out.add(calibration.RegSetting.of(fields))
        return out

    def describe(self) -> str:
        """Short description for captions: profile, epochs, data sizes."""
        t = self.base_config()
        n_train, n_test = SPLIT_SIZES[t.dataset]
        data = f"{t.subset:,}-image training subset" if t.subset else f"{n_train - t.val_split:,} training images"
        if t.val_split:
            data += f", {t.val_split:,} held out for validation"
        test = f"{t.test_subset:,} test images" if t.test_subset else f"full {n_test:,}-image test set"
        return f"profile '{self.name}': {t.epochs} epochs, {data}, {test}"


def _raw() -> dict[str, Any]:
    raw = yaml.safe_load(PROFILES_FILE.read_text())
    _take(raw, "the file", ("methods", "comparisons", "profiles", "regime"))
    return raw


@cache
def methods() -> dict[str, Method]:
    """Every method of ``profiles.yaml`` by key (validated: its fields make a valid config)."""
    out = {}
    for key, spec in _raw()["methods"].items():
        spec = dict(spec)
        label = spec.pop("label", None)
        scale = spec.pop("reg_weight_scale", 1.0)
        dense_method = spec.pop("dense_method", "dense")
        _require(isinstance(label, str) and label, f"method {key!r} needs a label")
        _require(
            dense_method == "dense" or spec.get("init") == "dense",
            f"method {key!r}: dense_method names the dense run a compression baseline decomposes; it needs init: dense",
        )
        _require(isinstance(scale, (int, float)) and scale > 0, f"method {key!r}: reg_weight_scale must be > 0, got {scale!r}")
        probe = {**spec, "reg_weight": 1.0} if spec.get("reg", "none") != "none" else dict(spec)
        if probe.get("init") == "dense":  # resolved per profile and seed by Profile.config
            probe["init"] = "decompose:" + "0" * 16
        if probe.get("format", "dense") != "dense":
            probe["flops_ratio"] = 2.0
        try:
            TrainConfig.from_dict(probe)
        except ConfigError as e:
            raise ConfigError(f"{PROFILES_FILE.name}: method {key!r}: {e}") from None
        out[key] = Method(key, label, spec, float(scale), dense_method)
    for m in out.values():
        if m.fields.get("init") == "dense":
            source = out.get(m.dense_method)
            _require(
                source is not None and source.dense and source.fields.get("init") is None,
                f"method {m.key!r}: dense_method {m.dense_method!r} must name a dense method trained from scratch",
            )
    return out


@dataclass(frozen=True)
class Regime:
    """The regime axis: ``profiles`` in order of training length, and the ``effects`` followed across
    them, each ``(treatment, reference)`` on ``model`` at ``flops_ratio`` fewer FLOPs; ``smallest_effect``:
    the smallest effect of interest of their words (accuracy points)."""

    profiles: tuple[str, ...]
    model: str
    flops_ratio: float
    effects: tuple[tuple[str, str], ...]
    smallest_effect: float


@cache
def regime() -> Regime:
    """The regime axis of ``profiles.yaml`` (validated: known profiles and methods)."""
    s = _take(_raw()["regime"], "regime", ("profiles", "model", "flops_ratio", "effects", "smallest_effect"))
    unknown = [p for p in s["profiles"] if p not in _raw()["profiles"]]
    _require(not unknown, f"regime names unknown profiles {unknown}")
    effects = []
    for i, e in enumerate(s["effects"]):
        e = _take(e, f"regime effects[{i}]", ("treatment", "reference"))
        bad = [m for m in e.values() if m not in methods()]
        _require(not bad, f"regime effects[{i}] names unknown methods {bad}")
        effects.append((e["treatment"], e["reference"]))
    return Regime(tuple(s["profiles"]), s["model"], float(s["flops_ratio"]), tuple(effects), float(s["smallest_effect"]))


def names() -> list[str]:
    """The profile names, in file order."""
    return list(_raw()["profiles"])


def same_data(name: str) -> list[str]:
    """The other profiles (file order, ``smoke`` left out) whose training settings equal those of profile
    ``name`` except ``epochs``: the same data, batch, schedule family and weight decay, so one of their
    epochs costs what one of ``name``'s costs (cpu-full-60's: cpu-full and cpu-full-30)."""
    own = {k: v for k, v in load(name).train.items() if k != "epochs"}
    return [
        other
        for other in names()
        if other not in (name, "smoke") and {k: v for k, v in load(other).train.items() if k != "epochs"} == own
    ]


def _comparison(key: str, spec: Any) -> Comparison:
    s = _take(
        spec,
        f"comparison {key!r}",
        ("reference", "smallest_effect"),
        ("treatment", "methods", "model", "flops_ratio", "headline", "beyond_paper"),
    )
    chosen = tuple(s.get("methods", ())) + ((s["treatment"],) if "treatment" in s else ())
    known = methods()
    for m in (s["reference"], *chosen, *([s["headline"]] if "headline" in s else [])):
        _require(m in known, f"comparison {key!r} names unknown method {m!r}; known: {', '.join(known)}")
    beyond = tuple(s.get("beyond_paper", ()))
    _require(set(beyond) <= set(chosen), f"comparison {key!r}: beyond_paper {list(beyond)} must be among its methods")
    smallest = s["smallest_effect"]
    _require(
        isinstance(smallest, (int, float)) and not isinstance(smallest, bool) and smallest > 0,
        f"comparison {key!r}: smallest_effect must be a number > 0, got {smallest!r}",
    )
    ratio = s.get("flops_ratio")
    return Comparison(
        s["reference"],
        chosen,
        s.get("model"),
        None if ratio is None else float(ratio),
        s.get("headline"),
        s.get("treatment"),
        float(smallest),
        beyond,
    )


def _group(name: str, i: int, spec: Any) -> RunGroup:
    s = _take(spec, f"profile {name!r} runs[{i}]", ("priority", "model", "flops_ratio", "methods", "seeds"))
    unknown = [m for m in s["methods"] if m not in methods()]
    _require(not unknown, f"profile {name!r} runs[{i}] names unknown methods {unknown}; known: {', '.join(methods())}")
    _require(
        isinstance(s["priority"], int) and s["priority"] >= 1, f"profile {name!r} runs[{i}]: priority must be an integer >= 1"
    )
    _require(
        s["seeds"] and all(isinstance(x, int) and x >= 0 for x in s["seeds"]),
        f"profile {name!r} runs[{i}]: seeds must be integers >= 0",
    )
    return RunGroup(s["priority"], s["model"], float(s["flops_ratio"]), tuple(s["methods"]), tuple(s["seeds"]))


@cache
def load(name: str, *, check_lambdas: bool = True) -> Profile:
    """The profile ``name``, validated; ``ConfigError`` naming the allowed profiles if unknown.
    ``check_lambdas=False`` skips the check that every regularized run has a calibrated lambda (for
    ``elrt calibrate``, which computes the missing ones)."""
    raw = _raw()["profiles"]
    if name not in raw:
        raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(raw)}")
    s = _take(raw[name], f"profile {name!r}", ("description", "train", "runs", "approximation", "comparisons"))
    a = _take(
        s["approximation"],
        f"profile {name!r} approximation",
        ("model", "ratios", "formats", "smallest_effect"),
        ("curve_ratios", "beyond_paper"),
    )
    _require(
        all(float(r) > 1 for r in [*a["ratios"], *a.get("curve_ratios", [])]),
        f"profile {name!r} approximation: ratios and curve_ratios are reductions (dense / low-rank), each > 1",
    )
    profile = Profile(
        name=name,
        description=s["description"],
        train=dict(s["train"]),
        runs=tuple(_group(name, i, g) for i, g in enumerate(s["runs"])),
        approximation=Approximation(
            a["model"],
            tuple(float(r) for r in a["ratios"]),
            tuple(a["formats"]),
            tuple(float(r) for r in a.get("curve_ratios", ())),
            float(a["smallest_effect"]),
            tuple(a.get("beyond_paper", ())),
        ),
        comparisons={k: _comparison(k, v) for k, v in s["comparisons"].items()},
    )
    if check_lambdas:
        for group in profile.runs:  # every run must make a valid config (lambda included)
            for method in group.methods:
                profile.config(method, group.model, group.flops_ratio, group.seeds[0])
    return profile
