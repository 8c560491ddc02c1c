"""Profiles (``smoke``, ``cpu``, ``paper``): the scale at which the study runs, from ``profiles.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError, TrainConfig

__all__ = ["Profile", "load", "names", "REG_TARGETS"]

REG_TARGETS = ("U2", "U1+U2")
"""Keys of ``reg_weights``: which factors are regularized."""


PROFILES_FILE = Path(__file__).with_name("profiles.yaml")


def _raw() -> dict[str, Any]:
    return yaml.safe_load(PROFILES_FILE.read_text())


def names() -> list[str]:
    """The profile names, in file order."""
    return list(_raw())


@dataclass(frozen=True)
class Profile:
    """One profile: shared training settings, seeds, lambdas and the knobs of each notebook."""

    name: str
    description: str
    train: dict[str, Any]
    seeds: tuple[int, ...]
    reg_weights: dict[str, dict[str, float]]
    approximation: dict[str, Any]
    orthogonality: dict[str, Any]
    regularizers: dict[str, Any]
    main: dict[str, Any]

    def config(self, **fields: Any) -> TrainConfig:
        """A :class:`TrainConfig` with this profile's training settings and ``fields`` on top."""
        return TrainConfig.from_dict({**self.train, **fields})

    def reg_weight(self, reg: str, on: tuple[str, ...] | list[str]) -> float:
        """Lambda of regularizer ``reg`` applied to factors ``on``."""
        key = "+".join(on)
        try:
            return float(self.reg_weights[reg][key])
        except KeyError:
            raise ConfigError(f"profile {self.name!r} has no reg_weights for {reg!r} on {key!r}") from None

    def seeds_for(self, part: str) -> tuple[int, ...]:
        """Seeds of one part of the study: its own ``seeds`` entry if it has one, else the profile's."""
        spec = getattr(self, part)
        return tuple(spec.get("seeds", self.seeds))

    def describe(self, n_seeds: int | None = None) -> str:
        """Short description for captions: profile, epochs, data size, and ``n_seeds`` (default:
        the profile's seed count)."""
        t = self.train
        data = f"{t['subset']:,}-image training subset" if t.get("subset") else "full training set"
        test = f"{t['test_subset']:,} test images" if t.get("test_subset") else "full 10,000-image test set"
        n = len(self.seeds) if n_seeds is None else n_seeds
        return f"profile '{self.name}': {t['epochs']} epochs, {data}, {test}, {n} seed{'s' if n > 1 else ''}"

    @property
    def label(self) -> str:
        """:meth:`describe` with the profile's seed count."""
        return self.describe()


def load(name: str) -> Profile:
    """The profile ``name``; ``ValueError`` naming the allowed profiles if unknown."""
    raw = _raw()
    if name not in raw:
        raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(raw)}")
    p = raw[name]
    profile = Profile(
        name=name,
        description=p["description"],
        train=dict(p["train"]),
        seeds=tuple(p["seeds"]),
        reg_weights={k: dict(v) for k, v in p["reg_weights"].items()},
        approximation=dict(p["approximation"]),
        orthogonality=dict(p["orthogonality"]),
        regularizers=dict(p["regularizers"]),
        main=dict(p["main"]),
    )
    profile.config()  # validates the shared training settings
    return profile
