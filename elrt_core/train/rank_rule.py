"""Which timing table a hardware-aware rank rule names: committed ``elrt bench --rank-table`` records
(``kind: rank_table``) under the bench folders, found by their id (``rank_rule: hw:<id>``), and the
resolution of ``hw`` to this device's newest table (:func:`resolve_rank_rule`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch

from .. import lowrank, models, records
from ..lowrank.hw_ranks import TimingTable
from ..machine_load import busy
from ..paths import project_root

__all__ = ["rank_tables", "load_rank_table", "resolve_rank_rule"]


def _bench_folders(root: str | Path | None) -> list[Path]:
    """Where bench records live: ``<results>/bench`` and the study's committed ``results/bench``."""
    folders = [records.results_root(root) / "bench"]
    with contextlib.suppress(FileNotFoundError):
        folders.append(project_root() / "results" / "bench")
    return list(dict.fromkeys(f.resolve() for f in folders))


def rank_tables(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Every timing-table record (``kind: rank_table``) under the bench folders, with its ``path``."""
    found = {}
    for folder in _bench_folders(root):
        for path in sorted(folder.rglob("*.json")):
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as e:
                raise ValueError(f"{path}: unreadable bench record ({e})") from None
            if isinstance(data, dict) and data.get("kind") == "rank_table":
                found.setdefault(data["table_id"], {**data, "path": str(path)})
    return list(found.values())


def load_rank_table(rule: str, root: str | Path | None = None) -> TimingTable:
    """The :class:`~elrt_core.lowrank.hw_ranks.TimingTable` named by ``rule`` (``"hw:<id>"``); a missing
    table is a ``FileNotFoundError`` naming the folders searched (a config that names a table never
    silently gets other ranks)."""
    wanted = rule.removeprefix("hw:")
    for data in rank_tables(root):
        if data["table_id"] == wanted:
            return TimingTable.from_record(data)
    raise FileNotFoundError(
        f"no timing table with id {wanted} under {', '.join(map(str, _bench_folders(root)))}: "
        "it is a committed `elrt bench --rank-table` record; restore it, or use rank_rule 'uniform'"
    )


def resolve_rank_rule(
    rule: str, device: torch.device, fmt: str, model: str, batch_size: int | None = None, root: str | Path | None = None
) -> tuple[str, str | None]:
    """``(stored rule, note)`` for a requested rank rule: ``"uniform"`` and ``"hw:<id>"`` stay as they
    are; ``"hw"`` becomes ``"hw:<id>"`` of the newest timing table measured on this device (same device
    name) for ``fmt`` that covers every converted layer shape of ``model`` (one not measured beside busy
    processes first, then one of batch ``batch_size``, if any), else ``"uniform"``: the fallback, said in the note."""
    if rule != "hw":
        return rule, None
    name = records.device_name(device)
    geoms = lowrank.convertible(models.get(model), models.input_shape(model))
    usable = [
        d
        for d in rank_tables(root)
        if d["provenance"]["device_name"] == name and d["format"] == fmt and TimingTable.from_record(d).covers(geoms)
    ]
    if not usable:
        return "uniform", (
            f"rank rule hw: no timing table for {fmt} {model} layers measured on {name}; "
            "falling back to the uniform rank rule (`elrt bench --rank-table` measures one)"
        )
    best = max(usable, key=lambda d: (not busy(d["provenance"]), d["batch_size"] == batch_size, d["provenance"]["ended"]))
    return f"hw:{best['table_id']}", f"rank rule hw: timing table {best['table_id']} ({best['path']}, batch {best['batch_size']})"
