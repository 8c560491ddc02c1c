"""The provenance page: every run record under a results folder, as one table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import records

__all__ = ["records_table", "BASIS"]

BASIS = "every run record under the results folder, of any profile; each row names its folder and device"
"""What the provenance table rests on, for its caption."""


def records_table(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """One row per usable record under ``root`` (folder, run, accuracy, status, code version, device,
    time), and the reasons the other record files cannot be used (paths relative to ``root``)."""
    good, bad = records.scan(root)
    rows = []
    for rec in good:
        prov = rec.provenance
        rows.append(
            {
                "folder": str(rec.path.parent.relative_to(root)) if rec.path.is_relative_to(root) else str(rec.path.parent),
                "run": rec.path.name,
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
                "train_minutes": round(prov.get("train_wall_seconds", prov.get("wall_seconds", 0)) / 60, 1),
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["folder", "started"]).reset_index(drop=True)
    return table, [str(b).replace(f"{Path(root).resolve()}/", "") for b in bad]  # no machine's path in the book
