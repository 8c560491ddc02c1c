"""The strength lambda of each orthogonality regularizer, per network, by one documented rule.

**Rule.** The paper does not state its lambdas. Ours make every regularizer start at the same
strength relative to the cross-entropy (about 2.3 at initialization): lambda is ``1 / P`` rounded to
one significant digit, where ``P`` is the penalty (lambda = 1) of the network at initialization, drawn
from scratch with seed 0 (SRIP's start vectors from a generator seeded 0). So ``lambda * P`` lies in
[0.67, 1.5], and lambda follows the number and size of the factors of each network: ResNet-56 has about
three times the factors of ResNet-20 and gets about a third of its lambda.

The values live in one data file, ``reg_weights.yaml`` next to this module, keyed by network
(:func:`network_key`) and regularizer setting (:func:`setting_key`), so that a run's config (which
holds lambda) does not depend on floating-point details of the machine that builds it.
:func:`calibrate` computes a value; ``elrt calibrate`` writes the ones a profile needs; the tests
check every entry a profile uses against the rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import yaml

from . import lowrank, models
from .config import ConfigError
from .regularizers import penalty

__all__ = ["calibrate", "reg_weight", "network_key", "setting_key", "table", "write", "WEIGHTS_FILE", "CALIBRATION_SEED"]

WEIGHTS_FILE = Path(__file__).with_name("reg_weights.yaml")
CALIBRATION_SEED = 0
_HEADER = (
    "# Lambda of each orthogonality regularizer per network: 1 / (penalty at initialization), one significant\n"
    "# digit (the rule: elrt_core/calibration.py). Written by `elrt calibrate`; checked by tests/test_calibration.py.\n"
)


def network_key(model: str, fmt: str, flops_ratio: float | None = None, params_ratio: float | None = None) -> str:
    """``"resnet20-tucker2-2xflops"``: the network a lambda belongs to."""
    ratio = f"{flops_ratio:g}xflops" if flops_ratio is not None else f"{params_ratio:g}xparams"
    return f"{model}-{fmt}-{ratio}"


def setting_key(reg: str, on: Iterable[str], per_rank: bool) -> str:
    """``"so-U2"``, ``"so-U1+U2-per_rank"``: the regularizer setting a lambda belongs to."""
    return f"{reg}-{'+'.join(on)}" + ("-per_rank" if per_rank else "")


def calibrate(
    model: str,
    fmt: str,
    reg: str,
    on: Iterable[str],
    per_rank: bool,
    *,
    flops_ratio: float | None = None,
    params_ratio: float | None = None,
) -> tuple[float, float]:
    """``(lambda, P)``: the penalty ``P`` at initialization (lambda = 1) and the rule's lambda ``1 / P``
    rounded to one significant digit."""
    torch.manual_seed(CALIBRATION_SEED)
    net = lowrank.convert(
        models.get(model),
        fmt,
        flops_ratio=flops_ratio,
        params_ratio=params_ratio,
        input_shape=models.input_shape(model),
        init="scratch",
    )
    with torch.no_grad():
        p = penalty(net, reg, 1.0, tuple(on), per_rank=per_rank, generator=torch.Generator().manual_seed(CALIBRATION_SEED)).item()
    return float(f"{1.0 / p:.0e}"), p


def table(path: Path = WEIGHTS_FILE) -> dict[str, dict[str, float]]:
    """The stored lambdas: ``{network key: {setting key: lambda}}``."""
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def reg_weight(
    model: str,
    fmt: str,
    reg: str,
    on: Iterable[str],
    per_rank: bool,
    *,
    flops_ratio: float | None = None,
    params_ratio: float | None = None,
) -> float:
    """The stored lambda of a regularizer setting on a network; ``ConfigError`` saying how to add it."""
    net, setting = network_key(model, fmt, flops_ratio, params_ratio), setting_key(reg, on, per_rank)
    try:
        return float(table()[net][setting])
    except KeyError:
        raise ConfigError(
            f"no calibrated lambda for {setting} on {net} in {WEIGHTS_FILE.name}: pass --reg-weight, "
            "or add it with `elrt calibrate` (see elrt_core/calibration.py)"
        ) from None


def write(entries: dict[str, dict[str, float]], path: Path = WEIGHTS_FILE) -> None:
    """Merge ``entries`` into the stored table (sorted keys, the header comment kept)."""
    merged = table(path)
    for net, settings in entries.items():
        merged.setdefault(net, {}).update(settings)
    body = yaml.safe_dump({k: dict(sorted(v.items())) for k, v in sorted(merged.items())}, sort_keys=False)
    path.write_text(_HEADER + body)
