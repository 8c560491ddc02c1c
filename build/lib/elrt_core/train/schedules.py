"""Learning-rate and regularization-strength schedules, as pure functions of progress.

All schedules are multipliers of the base value, evaluated per optimizer step, so a resumed run
recomputes them exactly from the step count.
"""

from __future__ import annotations

import math

__all__ = ["lr_factor", "reg_factor"]


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based) of ``total_steps``.

    * ``cosine``: ``0.5 (1 + cos(pi t))`` over the steps after warm-up (to 0 at the end);
    * ``step``: 1, then 0.1 from 50% and 0.01 from 75% of training (He et al. 2016 use 50%/75%);
    * ``onecycle``: Smith & Topin 2019 as in ``torch.optim.lr_scheduler.OneCycleLR`` defaults:
      cosine rise from 1/25 to 1 over the first 30% of steps, then cosine fall to 1/(25 * 1e4)
      (momentum is not cycled).

    ``warmup_steps``: linear warm-up from 0 (``cosine`` and ``step`` only).
    """
    t = step / max(1, total_steps)
    if schedule == "onecycle":
        peak = 0.3
        start, end = 1 / 25, 1 / (25 * 1e4)
        if t < peak:
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * t / peak))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * (t - peak) / (1 - peak)))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        u = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * u))
    if schedule == "step":
        return 0.1 ** ((t >= 0.5) + (t >= 0.75))
    raise ValueError(f"unknown schedule {schedule!r}; allowed: cosine, step, onecycle")


BANSAL_STEPS = ((0.1, 1e-2), (0.25, 1e-3), (0.35, 1e-5), (0.6, 0.0))
"""Bansal et al. (2018) lower lambda from 0.1 to 1e-3, 1e-4, 1e-6 at epochs 20, 50, 70 and switch it
off at epoch 120 of 200; these are the same steps as fractions of training and multipliers."""


def reg_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiplier of the regularization weight in ``epoch`` (0-based) of ``epochs``.

    ``constant``: 1 throughout. ``bansal``: the stepped schedule :data:`BANSAL_STEPS`, 0 from 60%.
    """
    if schedule == "constant":
        return 1.0
    if schedule == "bansal":
        t, factor = epoch / epochs, 1.0
        for start, value in BANSAL_STEPS:
            if t >= start:
                factor = value
        return factor
    raise ValueError(f"unknown reg_schedule {schedule!r}; allowed: constant, bansal")
