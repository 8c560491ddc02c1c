"""Atomic checkpoints of a training run (model, optimizer, scheduler, history)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_atomic", "load", "CHECKPOINT_FILE", "WEIGHTS_FILE"]

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights.pt"


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder (mode 0644), then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)
