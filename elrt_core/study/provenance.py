"""The provenance page: every run record under a results folder, as one table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import profiles, records
from . import plan

__all__ = ["records_table", "BASIS"]

BASIS = "every run record under the results folder, of any profile; each row names its folder and device"
"""What the provenance table rests on, for its caption."""


def _plan_hashes(profile: str, cache: dict[str, set[str]]) -> set[str] | None:
    """The config hashes of the plan of ``profile`` (the runs its chapters can read), cached in
    ``cache``; ``None`` where no profile has that name."""
    if profile not in profiles.names():
        return None
    if profile not in cache:
        cache[profile] = {r.config.hash for r in plan.plan(profiles.load(profile))}
    return cache[profile]


def records_table(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per usable record under ``root`` (folder, run, accuracy, status, whether the plan of the
    profile its folder is named after holds it: yes, no, or "no profile"; code version, device, time), and the reasons the other record files cannot
    be used (paths relative to ``root``)."""
    good, bad = records.scan(root)
    rows, plans = [], {}
    for rec in good:
        prov = rec.provenance
        folder = str(rec.path.parent.relative_to(root)) if rec.path.is_relative_to(root) else str(rec.path.parent)
        hashes = _plan_hashes(folder.split("/", 1)[0], plans)  # the profile folder, however deep the run
        rows.append(
            {
                "folder": folder,
                "in_plan": "no profile" if hashes is None else "yes" if rec.config.hash in hashes else "no",
                "run": rec.path.name,
                "reg_weight": rec.config.reg_weight if rec.config.reg != "none" else None,  # tells λ/4, λ, 4λ apart
                "final_top1": rec.metrics.get("final_test_top1"),
                "status": rec.status,
                "epochs": rec.config.epochs,
                "train_images": rec.metrics.get("train_images"),
                "commit": (prov.get("commit") or "unknown")[:10],
                "dirty": prov.get("dirty"),
                "torch": prov.get("versions", {}).get("torch"),
                "device": prov.get("device_name"),
                "processes": prov.get("world_size", 1),
                "started": prov.get("started"),
                "train_minutes": None if rec.train_minutes is None else round(rec.train_minutes, 1),
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["folder", "started"]).reset_index(drop=True)
    return table, [str(b).replace(f"{Path(root).resolve()}/", "") for b in bad]  # no machine's path in the book
