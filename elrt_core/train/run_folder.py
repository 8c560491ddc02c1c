"""What a run folder already holds, and an exclusive lock on it while a run trains there.

A run folder holds at most one run: ``record.json`` (finished or diverged), ``checkpoint.pt`` (the
last good epoch) and ``weights.pt``. Before a run starts, :func:`claim` locks the folder and decides
from what is there, never deleting anything unless ``force`` is given:

* a finished record of the same config: reuse it (the run is not trained again);
* a diverged record of the same config: refuse (training it again gives the same divergence);
* a checkpoint of the same config: resume from it when ``resume`` is set, else refuse;
* a record or checkpoint of another config, or one that cannot be read: refuse, naming it (so is a
  stale record, whose config hashes differently today, and a checkpoint that is not the training
  loop's, e.g. one whose epoch lies beyond the config's epochs).

``force`` starts the run over: the old record and checkpoint are removed first.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import records
from ..config import ConfigError, TrainConfig
from . import checkpoint

__all__ = ["Claim", "claim", "check", "busy", "RunFolderError", "FolderBusy", "BUSY_EXIT_STATUS", "LOCK_FILE"]

LOCK_FILE = ".lock"


class RunFolderError(ConfigError):
    """The run folder holds something this run must not overwrite; the message says what and the choices."""


class FolderBusy(RunFolderError):
    """Another process holds the lock of the run folder (it is training there)."""


BUSY_EXIT_STATUS = 4
"""Exit status of ``elrt train`` refused because another process is training in its folder (``elrt batch``
counts such a run as left to that process, not as failed)."""


@dataclass(frozen=True)
class Claim:
    """The decision for a locked run folder: ``action`` is ``"reuse"``, ``"resume"`` or ``"fresh"``;
    ``record`` is the finished record to reuse, ``state`` the checkpoint to resume from."""

    action: str
    record: records.Record | None = None
    state: dict[str, Any] | None = None


def _decide(out: Path, config: TrainConfig, resume: bool) -> Claim:
    record_path, ckpt_path = out / records.RECORD_FILE, out / checkpoint.CHECKPOINT_FILE
    retry = "pass --force to start this run over, or choose another --out"
    if record_path.exists():
        try:  # a stale record (its config hashes differently today) is refused, never reused
            rec = records.read(out)
        except records.InvalidRecord as e:
            raise RunFolderError(f"{e}; {retry}") from None
        if rec.config_hash != config.hash:
            raise RunFolderError(
                f"{out} holds the record of another run ({rec.data.get('name')}, config {rec.config_hash}); {retry}"
            )
        if rec.finished:
            return Claim("reuse", record=rec)
        raise RunFolderError(
            f"{out} holds a {rec.status} record of this config: {rec.metrics.get('divergence', {}).get('reason', '')}; "
            f"{retry} (a run with other settings, e.g. a lower --lr, is another config)"
        )
    if ckpt_path.exists():
        try:
            state = checkpoint.check(checkpoint.load(ckpt_path), str(ckpt_path), config_hash=config.hash, epochs=config.epochs)
        except checkpoint.CheckpointError as e:
            raise RunFolderError(f"{e}; {retry}") from None
        if resume:
            return Claim("resume", state=state)
        raise RunFolderError(
            f"{out} holds a checkpoint of this config at epoch {state['epoch']}: pass --resume to continue it, or --force to start over"
        )
    return Claim("fresh")


def check(out: Path, config: TrainConfig, *, resume: bool, force: bool) -> None:
    """Raise :class:`RunFolderError` now if :func:`claim` would refuse ``out`` (nothing is created or locked)."""
    out = Path(out)
    if out.is_dir() and not force:
        _decide(out, config, resume)


def busy(out: Path) -> bool:
    """Whether another process holds the lock of run folder ``out`` now (it is training there).

    Probes with a shared, non-blocking lock that is released at once; creates nothing."""
    try:
        fd = os.open(Path(out) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's lock
    return False


@contextmanager
def claim(out: Path, config: TrainConfig, *, resume: bool, force: bool, lock: bool = True) -> Iterator[Claim]:
    """Lock ``out`` (created if needed) for the duration of the block and decide what to do there.

    ``lock=False`` (the non-main processes of a distributed run) decides without taking the lock.
    Raises :class:`RunFolderError` when another process holds the lock or the folder must not be
    touched (see the module docstring).
    """
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644) if lock else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderBusy(f"another process is training in {out} (it holds {out / LOCK_FILE})") from None
        for tmp in out.glob(".*.tmp"):  # left by a process killed while writing; we hold the lock
            tmp.unlink()
        if force:
            for name in (records.RECORD_FILE, checkpoint.CHECKPOINT_FILE, checkpoint.WEIGHTS_FILE):
                (out / name).unlink(missing_ok=True)
        yield _decide(out, config, resume)
    finally:
        if fd is not None:
            if created and {p.name for p in out.iterdir()} == {LOCK_FILE}:  # failed before writing anything
                (out / LOCK_FILE).unlink()
                out.rmdir()
            os.close(fd)
