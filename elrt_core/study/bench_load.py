"""Bench records as the efficiency chapter reads them: where they are, how they are loaded, and the
facts every table asks of one (its device, when it started)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from .. import models

__all__ = ["BENCH_FOLDER", "BASIS", "load", "device", "started", "cifar"]

BENCH_FOLDER = "bench"

BASIS = "bench records made by `elrt bench`, not training runs; each row names its device"
"""What the efficiency tables and figures rest on, for their captions (see :meth:`Session.caption`)."""


def load(root: Path, kind: str) -> list[dict]:
    """Every bench record of ``kind`` (``"speedup"`` or ``"regularizer_overhead"``) under ``root/bench``."""
    out = []
    for path in sorted((Path(root) / BENCH_FOLDER).rglob("*.json")):
        data = json.loads(path.read_text())
        if data.get("kind") == kind:
            out.append({**data, "path": str(path)})
    return out


def device(record: dict) -> str:
    """The device a record was measured on, by name."""
    return record["provenance"]["device_name"]


def started(record: dict) -> datetime:
    """When a bench record's measurement started (UTC where the time names no offset; the earliest
    time where the record names none)."""
    t = datetime.fromisoformat(record["provenance"].get("started") or "0001-01-01T00:00:00")
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def cifar(model: str) -> bool:
    """Whether ``model`` takes CIFAR's 32x32 images (the networks of the accuracy study)."""
    return models.input_shape(model)[1:] == (32, 32)
