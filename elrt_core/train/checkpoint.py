"""Atomic checkpoints of a training run (model, optimizer, scheduler, history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import atomic

__all__ = ["save_atomic", "load", "CHECKPOINT_FILE", "WEIGHTS_FILE"]

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (:func:`elrt_core.atomic.replacing`)."""
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)
