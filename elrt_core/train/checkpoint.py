"""Atomic checkpoints of a training run (model, optimizer, scheduler, history), and the one safe way
to read them and weights files.

A checkpoint or ``weights.pt`` may come from elsewhere (``elrt gpu receive``, a shared folder, a
download), so :func:`load` reads it with ``torch.load(weights_only=True)``: only tensors and plain
containers are unpickled, and a file that asks for anything else is refused before any of its code
could run. :func:`check` then says whether a loaded checkpoint has the shape :func:`save_atomic`'s
caller writes, so that a damaged or hand-edited file is named in one line instead of failing later.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import IO, Any

import torch

from .. import atomic
from ..plain_data import Kind, key_problem

__all__ = ["save_atomic", "load", "check", "CheckpointError", "CHECKPOINT_FILE", "WEIGHTS_FILE", "KEYS"]

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights.pt"
KEYS: dict[str, Kind] = {
    "config_hash": str,
    "epoch": int,
    "model": dict,
    "optimizer": dict,
    "scheduler": dict,
    "history": list,
    "wall_seconds": (int, float),
}
"""The keys of a checkpoint written by the training loop, with their types."""


class CheckpointError(ValueError):
    """A checkpoint or weights file that cannot be used; the message names the file and why."""


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (:func:`elrt_core.atomic.replacing`)."""
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)


def load(source: Path | IO[bytes], name: str | None = None) -> Any:
    """The content of a checkpoint or weights file (a path or an open binary file), on the CPU, read
    without running code from it; :class:`CheckpointError` naming ``name`` (default: the path) if
    it is not a PyTorch file of tensors and plain data."""
    name = name or str(source)
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message advises weights_only=False: not advice to pass on
        raise CheckpointError(
            f"{name} cannot be read as a checkpoint: it is not a PyTorch file of tensors and plain data "
            "(refused unread, since such a file could run code)"
        ) from None
    except Exception as e:  # arbitrary bytes fail the unpickler or the zip reader in many ways
        first = str(e).strip().splitlines()
        raise CheckpointError(
            f"{name} cannot be read as a checkpoint ({type(e).__name__}: {first[0] if first else ''})"
        ) from None


def check(state: Any, name: str, *, config_hash: str | None = None, epochs: int | None = None) -> dict[str, Any]:
    """``state`` if it is a checkpoint of the training loop (:data:`KEYS` with their types, one
    history row per epoch done) and, where given, of the config with ``config_hash`` that trains
    ``epochs`` epochs (its epoch within them); else :class:`CheckpointError` naming ``name`` and the
    first problem."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{name} is not a checkpoint: it holds a {type(state).__name__}, not a dict")
    problem = key_problem(  # each message follows the file's name
        state, KEYS, missing=" is not a complete checkpoint: it has no {key}", mistyped=": {key} is a {got}, not a {kind}"
    )
    if problem:
        raise CheckpointError(name + problem)
    if config_hash is not None and state["config_hash"] != config_hash:
        raise CheckpointError(f"{name} belongs to config {state['config_hash']}, not {config_hash}")
    epoch = state["epoch"]
    if epoch < 1 or (epochs is not None and epoch > epochs):
        within = f"1 to the config's {epochs}" if epochs is not None else "at least 1"
        raise CheckpointError(f"{name} says epoch {epoch}; a checkpoint of this run holds {within}")
    if len(state["history"]) != epoch or not all(isinstance(row, dict) for row in state["history"]):
        raise CheckpointError(
            f"{name} says epoch {epoch} but holds {len(state['history'])} history rows, not one object per epoch"
        )
    return state
