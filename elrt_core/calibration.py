"""The strength lambda of each orthogonality regularizer, per network, by one documented rule.

**Rule.** The paper does not state its lambdas. Ours make every regularizer start at the same
strength relative to the cross-entropy (about 2.3 at initialization): lambda is ``1 / P`` rounded to
one significant digit, where ``P`` is the penalty (lambda = 1) of the network at initialization, drawn
from scratch with seed 0 (SRIP's start vectors from a generator seeded 0). So ``lambda * P`` lies in
[2/3, 4/3] (rounding ``x`` to one significant digit changes it by a factor between 1/1.5, just below
x = 1.5, and 2/1.5, at x = 1.5), and lambda follows the number and size of the factors of each network: ResNet-56 has about
three times the factors of ResNet-20 and gets about a third of its lambda.

The values live in one data file, ``reg_weights.yaml`` next to this module, keyed by network
(:func:`network_key`) and regularizer setting (:func:`setting_key`), so that a run's config (which
holds lambda) does not depend on floating-point details of the machine that builds it.
:func:`calibrate` computes a value; ``elrt calibrate`` writes the ones a profile needs; the tests
check every entry a profile uses against the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from . import lowrank, models
from .config import ConfigError
from .regularizers import penalty

__all__ = [
    "RegSetting",
    "calibrate",
    "reg_weight",
    "network_key",
    "setting_key",
    "table",
    "write",
    "WEIGHTS_FILE",
    "CALIBRATION_SEED",
]

WEIGHTS_FILE = Path(__file__).with_name("reg_weights.yaml")
CALIBRATION_SEED = 0
_HEADER = (
    "# Lambda of each orthogonality regularizer per network: 1 / (penalty at initialization), one significant\n"
    "# digit (the rule: elrt_core/calibration.py). Written by `elrt calibrate`; checked by tests/test_calibration.py.\n"
)


def network_key(model: str, fmt: str, flops_ratio: float | None = None, params_ratio: float | None = None) -> str:
    """``"resnet20-tucker2-2xflops"``: the network a lambda belongs to (one of the two ratios is given)."""
    if flops_ratio is None and params_ratio is None:
        raise ValueError(f"{model} {fmt}: a regularized network needs a flops_ratio or a params_ratio")
    ratio = f"{flops_ratio:g}xflops" if flops_ratio is not None else f"{params_ratio:g}xparams"
    return f"{model}-{fmt}-{ratio}"


def setting_key(reg: str, on: Iterable[str], per_rank: bool) -> str:
    """``"so-U2"``, ``"so-U1+U2-per_rank"``: the regularizer setting a lambda belongs to."""
    return f"{reg}-{'+'.join(on)}" + ("-per_rank" if per_rank else "")


@dataclass(frozen=True)
class RegSetting:
    """A regularizer setting on a low-rank network: what one stored lambda belongs to. ``format`` and
    ``on`` (the factors penalized) as in :class:`~elrt_core.config.TrainConfig`; one of ``flops_ratio``
    and ``params_ratio`` sets the network's budget."""

    model: str
    format: str
    reg: str
    on: tuple[str, ...]
    per_rank: bool = False
    flops_ratio: float | None = None
    params_ratio: float | None = None

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> RegSetting:
        """The setting of a config's fields (a dict of TrainConfig fields, or ``asdict`` of a config)."""
        on = fields.get("reg_on", ("U2",))
        return cls(
            fields.get("model", "resnet20"),
            fields.get("format", "dense"),
            fields["reg"],
            (on,) if isinstance(on, str) else tuple(on),
            bool(fields.get("reg_per_rank")),
            fields.get("flops_ratio"),
            fields.get("params_ratio"),
        )

    @property
    def keys(self) -> tuple[str, str]:
        """``(network key, setting key)`` of the stored table (:func:`network_key`, :func:`setting_key`)."""
        return network_key(self.model, self.format, self.flops_ratio, self.params_ratio), setting_key(
            self.reg, self.on, self.per_rank
        )


def calibrate(setting: RegSetting) -> tuple[float, float]:
    """``(lambda, P)``: the penalty ``P`` of the setting's network at initialization (lambda = 1) and the
    rule's lambda ``1 / P`` rounded to one significant digit."""
    torch.manual_seed(CALIBRATION_SEED)
    budget = {"flops_ratio": setting.flops_ratio, "params_ratio": setting.params_ratio}
    net = lowrank.convert(
        models.get(setting.model), setting.format, **budget, input_shape=models.input_shape(setting.model), init="scratch"
    )
    generator = torch.Generator().manual_seed(CALIBRATION_SEED)
    with torch.no_grad():
        p = penalty(net, setting.reg, 1.0, setting.on, per_rank=setting.per_rank, generator=generator).item()
    return float(f"{1.0 / p:.0e}"), p


def table(path: Path = WEIGHTS_FILE) -> dict[str, dict[str, float]]:
    """The stored lambdas: ``{network key: {setting key: lambda}}``."""
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def reg_weight(setting: RegSetting) -> float:
    """The stored lambda of a regularizer setting on a network; ``ConfigError`` saying how to add it."""
    net, key = setting.keys
    try:
        return float(table()[net][key])
    except KeyError:
        raise ConfigError(
            f"no calibrated lambda for {key} on {net} in {WEIGHTS_FILE.name}: pass --reg-weight, "
            "or add it with `elrt calibrate` (see elrt_core/calibration.py)"
        ) from None


def write(entries: dict[str, dict[str, float]], path: Path = WEIGHTS_FILE) -> None:
    """Merge ``entries`` into the stored table (sorted keys, the header comment kept)."""
    merged = table(path)
    for net, settings in entries.items():
        merged.setdefault(net, {}).update(settings)
    body = yaml.safe_dump({k: dict(sorted(v.items())) for k, v in sorted(merged.items())}, sort_keys=False)
    path.write_text(_HEADER + body)
