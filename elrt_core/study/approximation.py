"""Figure 3's errors of one network, computed once and kept beside the records.

The approximation analysis (:func:`elrt_core.analysis.layer_errors`) of a ResNet-20 and its
initialization at every budget takes about 25 minutes on two CPU cores, most of it in CP-ALS. Each
table is stored under the profile's results folder as ``<weights>-<key>.csv`` with a JSON sidecar of
its provenance. The ``key`` is the sha256 of everything the table depends on: each conv layer (name,
``repr`` with its shape, stride and padding, and its kernel's bytes), the analysis spec (model,
formats, budgets) and the analysis code (the syntax trees of :data:`CODE` without docstrings and
comments, and the torch release, tensorly and numpy versions), so a new network, spec or algorithm
gets a new file and a stored table is never reused for something it was not computed from, while an
edit to a docstring, a comment or the file writing keeps the stored tables valid.

The networks are those of :func:`networks`: the trained dense network of the profile's
approximation run and, as the control, the same architecture at its seeded initialization.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import inspect
import json
import textwrap
import time
from collections.abc import Mapping
from importlib import import_module
from pathlib import Path

import numpy as np
import pandas as pd
import tensorly
import torch
from torch import nn

from .. import analysis, atomic, cost, models, records
from ..lowrank import layers, tucker
from ..profiles import Approximation
from ..records import Record
from .session import load_model

__all__ = ["approximation_errors", "figure3_errors", "networks", "errors_key", "code_fingerprint", "CODE"]


def _budgets(spec: Approximation) -> tuple[list[float], list[float]]:
    """Per-layer MAC reductions (``ratios`` and ``curve_ratios``) and parameter reductions (``ratios``)."""
    return sorted({*spec.ratios, *spec.curve_ratios}), list(spec.ratios)


def _is_string_statement(statement: ast.stmt) -> bool:
    """A bare string (a docstring, or the attribute docstring after an assignment): no effect at run time."""
    return (
        isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) and isinstance(statement.value.value, str)
    )


def _canonical(node: object) -> str:
    """A dump of a syntax tree that names each node and its non-empty fields only, so that fields a
    Python release adds empty (``type_params`` in 3.12) or stops printing when empty (3.13) do not change it."""
    if isinstance(node, ast.AST):
        fields = ((name, getattr(node, name, None)) for name in node._fields)
        return f"{type(node).__name__}({', '.join(f'{name}={_canonical(v)}' for name, v in fields if v is not None and v != [])})"
    if isinstance(node, list):
        return f"[{', '.join(_canonical(item) for item in node)}]"
    return repr(node)


def code_fingerprint(obj: object) -> str:
    """The syntax tree of ``obj``'s source (a module or function) without bare strings (docstrings),
    comments or layout, as :func:`_canonical` dumps it: only an edit that can change what the code
    computes changes it."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            statements = getattr(node, field, None)
            if isinstance(statements, list) and any(isinstance(s, ast.stmt) and _is_string_statement(s) for s in statements):
                kept = [s for s in statements if not _is_string_statement(s)]
                setattr(node, field, kept or ([ast.Pass()] if field == "body" else []))
    return _canonical(tree)


def _versions(versions: Mapping[str, str] | None = None) -> str:
    """The library versions a table depends on: ``versions`` (e.g. a sidecar's) or this environment's,
    torch as its release without the build tag (+cpu, +cu128 do not change CPU float64 math)."""
    found = versions or {"torch": torch.__version__, "tensorly": tensorly.__version__, "numpy": np.__version__}
    return f"torch {found['torch'].split('+')[0]} tensorly {found['tensorly']} numpy {found['numpy']}"


ANALYSIS_FIELDS = ("model", "ratios", "formats", "curve_ratios")
"""The fields of an :class:`Approximation` that decide its errors (the others judge them: a verdict setting
never makes a new table)."""


def _analysed(spec: Approximation) -> dict:
    return {k: v for k, v in dataclasses.asdict(spec).items() if k in ANALYSIS_FIELDS}


def errors_key(model: nn.Module, spec: Approximation, versions: Mapping[str, str] | None = None) -> str:
    """First 16 hex digits of the sha256 of ``model``'s conv layers (name, ``repr``, kernel bytes),
    the :data:`ANALYSIS_FIELDS` of ``spec``, the analysis code (:func:`code_fingerprint` of each of :data:`CODE`) and the torch,
    tensorly and numpy versions (this environment's, or ``versions``: ``{"torch": ..., "tensorly":
    ..., "numpy": ...}``, e.g. to check a stored table against the code in another environment)."""
    h = hashlib.sha256()
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            h.update(f"{name} {module!r}".encode())
            h.update(module.weight.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(json.dumps(_analysed(spec), sort_keys=True).encode())
    for code in CODE:
        h.update(code_fingerprint(code).encode())
    h.update(_versions(versions).encode())
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
    records.write_json(path.with_suffix(".json"), {"table": path.name, "spec": _analysed(spec), "provenance": prov})
    with atomic.replacing(path) as tmp:
        table.to_csv(tmp, index=False)


def networks(record: Record, spec: Approximation) -> dict[str, nn.Module]:
    """The two networks Figure 3 analyses: ``"trained"``, the dense network of ``record`` with its
    trained weights, and ``"initialization"``, the control: ``spec.model`` as built with the CPU
    generator seeded by the record's seed (its initialization, before any training). The caller's
    random state is left as it was."""
    with torch.random.fork_rng(devices=[]):  # both built on the CPU, from its generator only
        trained = load_model(record)
        torch.random.default_generator.manual_seed(record.config.seed)
        return {"trained": trained, "initialization": models.get(spec.model)}


def figure3_errors(
    record: Record, spec: Approximation, cache: Path | None = None, progress: bool = False
) -> dict[str, pd.DataFrame]:
    """:func:`approximation_errors` of each of the :func:`networks` of ``record``, by their name
    (``"trained"``, ``"initialization"``), each read from or stored in ``cache``."""
    return {weights: approximation_errors(net, spec, weights, cache, progress) for weights, net in networks(record, spec).items()}


CODE = (analysis, cost, import_module("..lowrank.convert", __package__), layers, tucker, _budgets, approximation_errors)
"""The code that decides the errors: the analysis; the cost model that sets each budget's frontier;
the module ``lowrank.convert`` (not the function of that name the package exports), the format
classes and their fits; and the functions of this module that choose the budgets and call the
analysis. A change to any of them, docstrings and comments aside, gives a new key; the file I/O and
:func:`networks` do not enter (the networks' kernels do)."""
