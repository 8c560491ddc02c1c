"""Figure 3's errors of one network, computed once and kept beside the records.

The approximation analysis (:func:`elrt_core.analysis.layer_errors`) of a ResNet-20 at every budget
takes about 15 minutes on two CPU cores, most of it in CP-ALS. Its table is stored under the
profile's results folder as ``<weights>-<key>.csv`` with a JSON sidecar of its provenance. The
``key`` is the sha256 of everything the table depends on: the conv kernels (bytes), the analysis spec
(model, formats, budgets) and the analysis code (the source of :mod:`elrt_core.analysis` and of the
format classes, and the tensorly and numpy versions), so a new network, spec or algorithm gets a new
file and a stored table is never reused for something it was not computed from.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorly
import torch
from torch import nn

from .. import analysis, records
from ..lowrank import layers, tucker
from ..profiles import Approximation

__all__ = ["approximation_errors", "errors_key"]

_CODE = (analysis, layers, tucker)
"""Modules whose source decides the errors (a change to any of them gives a new key)."""


def _budgets(spec: Approximation) -> tuple[list[float], list[float]]:
    """Per-layer MAC reductions (``ratios`` and ``curve_ratios``) and parameter reductions (``ratios``)."""
    return sorted({*spec.ratios, *spec.curve_ratios}), list(spec.ratios)


def errors_key(model: nn.Module, spec: Approximation) -> str:
    """First 16 hex digits of the sha256 of ``model``'s conv kernels, ``spec`` and the analysis code."""
    h = hashlib.sha256()
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            h.update(name.encode())
            h.update(module.weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode())
    for module in _CODE:
        h.update(inspect.getsource(module).encode())
    h.update(f"tensorly {tensorly.__version__} numpy {np.__version__}".encode())
    return h.hexdigest()[:16]


def approximation_errors(
    model: nn.Module, spec: Approximation, weights: str, cache: Path | None = None, progress: bool = False
) -> pd.DataFrame:
    """:func:`elrt_core.analysis.layer_errors` of ``model`` in every format of ``spec`` at each
    per-layer MAC reduction of ``spec.ratios`` and ``spec.curve_ratios`` and each parameter reduction
    of ``spec.ratios``, with a ``weights`` column naming the weights (``"trained"``, ``"initialization"``).

    ``cache``: a folder; the table is read from ``<cache>/<weights>-<key>.csv`` when that file exists
    (:func:`errors_key`), else computed and written there (atomically, with a ``.json`` provenance
    sidecar: key, spec, git commit, versions, device, seconds). ``None``: always computed.
    """
    macs, params = _budgets(spec)
    path = None if cache is None else Path(cache) / f"{weights}-{errors_key(model, spec)}.csv"
    if path is not None and path.exists():
        return pd.read_csv(path, dtype={"layer": str}, converters={"ranks": ast.literal_eval})
    started = time.time()
    table = analysis.layer_errors(model, spec.formats, macs, params, progress=progress).assign(weights=weights)
    if path is not None:
        _write(table, path, spec, started)
    return table


def _write(table: pd.DataFrame, path: Path, spec: Approximation, started: float) -> None:
    """``table`` as CSV at ``path`` (temporary file + rename) and its provenance beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)
    ended = time.time()
    prov = records.provenance(torch.device("cpu"), seed=0, profile="", started=started, ended=ended)
    prov = {k: v for k, v in prov.items() if k not in ("seed", "profile")}
    records.write_json(path.with_suffix(".json"), {"table": path.name, "spec": dataclasses.asdict(spec), "provenance": prov})
