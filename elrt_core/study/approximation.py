"""Figure 3's errors of one network, computed once and kept beside the records.

The approximation analysis (:func:`elrt_core.analysis.layer_errors`) of a ResNet-20 and its
initialization at every budget takes about 25 minutes on two CPU cores, most of it in CP-ALS. Each
table is stored under the profile's results folder as ``<weights>-<key>.csv`` with a JSON sidecar of
its provenance. The ``key`` is the sha256 of everything the table depends on: each conv layer (name,
``repr`` with its shape, stride and padding, and its kernel's bytes), the analysis spec (model,
formats, budgets) and the analysis code (the source of :data:`CODE`, and the torch release,
tensorly and numpy versions), so a new network, spec or algorithm gets a new file and a stored table is never
reused for something it was not computed from.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorly
import torch
from torch import nn

from .. import analysis, cost, records
from ..lowrank import convert, layers, tucker
from ..profiles import Approximation

__all__ = ["approximation_errors", "errors_key", "CODE"]

CODE = (analysis, cost, convert, layers, tucker, sys.modules[__name__])
"""Modules whose source decides the errors: the analysis, the cost model that sets each budget's
frontier, the format classes and their fits, and this module (a change to any gives a new key)."""


def _budgets(spec: Approximation) -> tuple[list[float], list[float]]:
    """Per-layer MAC reductions (``ratios`` and ``curve_ratios``) and parameter reductions (``ratios``)."""
    return sorted({*spec.ratios, *spec.curve_ratios}), list(spec.ratios)


def errors_key(model: nn.Module, spec: Approximation) -> str:
    """First 16 hex digits of the sha256 of ``model``'s conv layers (name, ``repr``, kernel bytes),
    ``spec`` and the analysis code (:data:`CODE` and the torch, tensorly and numpy versions)."""
    h = hashlib.sha256()
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            h.update(f"{name} {module!r}".encode())
            h.update(module.weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode())
    for module in CODE:
        h.update(inspect.getsource(module).encode())
    release = torch.__version__.split("+")[0]  # the build tag (+cpu, +cu128) does not change CPU float64 math
    h.update(f"torch {release} tensorly {tensorly.__version__} numpy {np.__version__}".encode())
    return h.hexdigest()[:16]


def approximation_errors(
    model: nn.Module, spec: Approximation, weights: str, cache: Path | None = None, progress: bool = False
) -> pd.DataFrame:
    """:func:`elrt_core.analysis.layer_errors` of ``model`` in every format of ``spec`` at each
    per-layer MAC reduction of ``spec.ratios`` and ``spec.curve_ratios`` and each parameter reduction
    of ``spec.ratios``, with a ``weights`` column naming the weights (``"trained"``, ``"initialization"``).

    ``cache``: a folder; the table is read from ``<cache>/<weights>-<key>.csv`` (:func:`errors_key`)
    when that file and its ``.json`` provenance sidecar (table name, spec, git commit, versions,
    device, seconds) exist, else computed and written there, the sidecar first and each file
    atomically. ``None``: always computed.
    """
    macs, params = _budgets(spec)
    path = None if cache is None else Path(cache) / f"{weights}-{errors_key(model, spec)}.csv"
    if path is not None and path.exists() and path.with_suffix(".json").exists():
        return pd.read_csv(path, dtype={"layer": str}, converters={"ranks": ast.literal_eval})
    started = time.time()
    table = analysis.layer_errors(model, spec.formats, macs, params, progress=progress).assign(weights=weights)
    if path is not None:
        _write(table, path, spec, started)
    return table


def _write(table: pd.DataFrame, path: Path, spec: Approximation, started: float) -> None:
    """``table`` as CSV at ``path`` after its provenance sidecar (a table is used only with one);
    both written to a temporary file in the same folder, then renamed."""
    prov = records.provenance(torch.device("cpu"), seed=0, profile="", started=started, ended=time.time())
    prov = {k: v for k, v in prov.items() if k not in ("seed", "profile")}
    records.write_json(path.with_suffix(".json"), {"table": path.name, "spec": dataclasses.asdict(spec), "provenance": prov})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            table.to_csv(f, index=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
