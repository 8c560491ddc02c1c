"""Get a run's record, training it only when no finished record with the same config hash exists."""

from __future__ import annotations

import os
from pathlib import Path

from .. import records
from ..config import RunOptions, TrainConfig
from ..records import PROJECT_ROOT, Record

__all__ = ["results_root", "run_dir", "get_or_run", "MissingRun"]


def results_root(root: str | os.PathLike | None = None) -> Path:
    """Where run records live: ``root``, else ``$ELRT_RESULTS``, else ``<project>/results``."""
    return Path(root or os.environ.get("ELRT_RESULTS") or PROJECT_ROOT / "results")


def run_dir(config: TrainConfig, profile: str, root: str | os.PathLike | None = None) -> Path:
    """``<results>/<profile>/<config.name>``."""
    return results_root(root) / profile / config.name


class MissingRun(LookupError):
    """A record the study needs does not exist and training was not allowed."""


def get_or_run(
    config: TrainConfig,
    profile: str,
    *,
    root: str | os.PathLike | None = None,
    train_missing: bool = True,
    device: str = "auto",
    data_dir: str | os.PathLike | None = None,
    quiet: bool = False,
) -> Record:
    """The finished record of ``config`` under ``<results>/<profile>``; train it (resumably) if absent."""
    found = records.find(config, results_root(root) / profile)
    if found is not None:
        return found
    if not train_missing:
        raise MissingRun(
            f"no finished record of {config.name} (config {config.hash}) under {results_root(root) / profile}; "
            f"train it with `elrt reproduce --profile {profile}` (or `make reproduce PROFILE={profile}`)"
        )
    from ..train import fit  # training pulls in the data layer; reading records does not

    out = run_dir(config, profile, root)
    fit(config, RunOptions(out=out, device=device, data_dir=Path(data_dir) if data_dir else None,
                           resume=True, quiet=quiet, profile=profile))
    return records.read(out)
