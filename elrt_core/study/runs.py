"""Get a run's record, training it only when no record with the same config hash exists."""

from __future__ import annotations

import os
from pathlib import Path

from .. import records
from ..config import RunOptions, TrainConfig
from ..records import Record, results_root

__all__ = ["results_root", "run_dir", "get_or_run", "MissingRun"]


def run_dir(config: TrainConfig, profile: str, root: str | os.PathLike | None = None) -> Path:
    """``<results>/<profile>/<config.name>``."""
    return results_root(root) / profile / config.name


class MissingRun(LookupError):
    """A record the study needs does not exist (or diverged) and training was not allowed."""


def get_or_run(
    config: TrainConfig,
    profile: str,
    *,
    root: str | os.PathLike | None = None,
    train_missing: bool = True,
    device: str = "auto",
    data_dir: str | os.PathLike | None = None,
    quiet: bool = False,
    threads: int | None = None,
) -> Record:
    """The finished record of ``config`` under ``<results>/<profile>``; train it (resuming a
    checkpoint) if absent. A diverged record is an error, not a reason to train again."""
    found = records.lookup(config, results_root(root) / profile)
    if found is not None and found.finished:
        return found
    if found is not None:
        raise MissingRun(
            f"{config.name} diverged ({found.metrics.get('divergence', {}).get('reason', 'see its record')}); "
            f"its record is {found.path / records.RECORD_FILE}"
        )
    if not train_missing:
        raise MissingRun(
            f"no finished record of {config.name} (config {config.hash}) under {results_root(root) / profile}; "
            f"train it with `elrt batch --profile {profile}` or `elrt reproduce --profile {profile}`"
        )
    from ..train import fit  # training pulls in the data layer; reading records does not

    out = run_dir(config, profile, root)
    fit(
        config,
        RunOptions(
            out=out,
            device=device,
            data_dir=Path(data_dir) if data_dir else None,
            resume=True,
            quiet=quiet,
            profile=profile,
            threads=threads,
        ),
    )
    return records.read(out)
