"""The tables of the book's written pages, computed when the book is built (``{elrt-config}`` in
:mod:`elrt_core.study.sphinx_ext`): the methods, profiles and run plans of ``profiles.yaml``, the
calibrated λ of ``reg_weights.yaml``, and the compute that each profile and chapter took, summed from
the run records. A page shows them as rendered tables, never as the configuration files, and types
none of their numbers. Also the study's BibTeX entry, made from ``CITATION.cff``, and any entry of the
book's bibliography (``{elrt-citation}``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import yaml

from .. import calibration, profiles, records
from ..config import SPLIT_SIZES
from ..lowrank.convert import format_class
from . import plan, reproduce

__all__ = [
    "citation_bibtex",
    "bib_entry",
    "methods_table",
    "profiles_table",
    "runs_table",
    "lambdas_table",
    "compute_table",
    "chapter_table",
    "TABLES",
]

_DESCRIBED = ("format", "reg", "reg_on", "reg_per_rank")


def _seeds(seeds: tuple[int, ...]) -> str:
    contiguous = list(seeds) == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"{seeds[0]}–{seeds[-1]}" if contiguous and len(seeds) > 2 else ", ".join(map(str, seeds))


def _text(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _regularizer(fields: dict) -> str:
    if fields.get("reg", "none") == "none":
        return "none"
    on = ", ".join(fields.get("reg_on", ("U2",)))
    return f"{fields['reg'].upper()} on {on}" + (", each factor's penalty / rank" if fields.get("reg_per_rank") else "")


def methods_table() -> pd.DataFrame:
    """One row per method of ``profiles.yaml``: label, format, regularizer, λ, its other settings and key."""
    rows = []
    for m in profiles.methods().values():
        fields = dict(m.fields)
        reg = fields.get("reg", "none") != "none"
        rows.append(
            {
                "method": m.label,
                "format": "dense" if m.dense else format_class(m.format).label,
                "regularizer": _regularizer(fields),
                "λ": ("calibrated" if m.reg_weight_scale == 1 else f"{m.reg_weight_scale:g} × calibrated") if reg else "—",
                "other settings": "; ".join(f"{k}: {_text(v)}" for k, v in fields.items() if k not in _DESCRIBED) or "—",
                "key": m.key,
            }
        )
    return pd.DataFrame(rows)


def profiles_table() -> pd.DataFrame:
    """One row per profile: what it is for, its training settings and data, and the size of its plan."""
    rows = []
    for name in profiles.names():
        p = profiles.load(name)
        t = p.base_config()
        n_train, n_test = SPLIT_SIZES[t.dataset]
        planned = plan.plan(p)
        rows.append(
            {
                "profile": name,
                "what": p.description.split(":")[0],  # the rest repeats the columns
                "epochs": t.epochs,
                "schedule": f"{t.schedule}, peak lr {t.lr:g}",
                "batch": t.batch_size,
                "weight decay": f"{t.weight_decay:g}",
                "training images": t.subset or n_train - t.val_split,  # the subset is drawn after the split
                "validation images": t.val_split,
                "test images": t.test_subset or n_test,
                "planned runs": len(planned),
            }
        )
    return pd.DataFrame(rows)


def runs_table(name: str) -> pd.DataFrame:
    """The run groups of profile ``name`` in training order: priority, network, methods and seeds."""
    labels = {k: m.label for k, m in profiles.methods().items()}
    groups = sorted(profiles.load(name).runs, key=lambda g: g.priority)
    return pd.DataFrame(
        [
            {
                "priority": g.priority,
                "model": g.model,
                "FLOPs reduction": f"{g.flops_ratio:g}x",
                "methods": " · ".join(labels[m] for m in g.methods),
                "seeds": _seeds(g.seeds),
            }
            for g in groups
        ]
    )


def lambdas_table() -> pd.DataFrame:
    """The calibrated λ of every network and regularizer setting (``reg_weights.yaml``)."""
    return pd.DataFrame(
        [
            {"network": network, "regularizer setting": setting, "λ": f"{value:g}"}
            for network, settings in calibration.table().items()
            for setting, value in settings.items()
        ]
    )


def _finished(root: Path, name: str) -> dict[str, records.Record]:
    """Config hash -> finished record, of every record under ``root/name``."""
    good, _ = records.scan(root / name) if (root / name).is_dir() else ([], [])
    return {r.config_hash: r for r in good if r.finished}


def _hours(planned: list[plan.PlannedRun], found: dict[str, records.Record], paced_by: Iterable[records.Record] = ()) -> dict:
    """Runs planned and finished, their recorded training hours, the median per run, and the hours the
    others would take at the median minutes an epoch of the finished ones (:func:`plan.epochs_left`:
    a 5-epoch fine-tuning counts its 5 epochs, a dense run to train again for its weights its own); where
    none is timed, at that of ``paced_by`` (finished runs of profiles of the same data); None without either."""
    timed = [
        (rec.train_minutes, rec.config.epochs)
        for run in planned
        if (rec := found.get(run.config.hash)) and rec.train_minutes is not None
    ]
    finished = sum(run.config.hash in found for run in planned)
    per_run = statistics.median(m for m, _ in timed) / 60 if timed else None
    pace = timed or [(r.train_minutes, r.config.epochs) for r in paced_by if r.train_minutes is not None]
    per_epoch = statistics.median(m / e for m, e in pace) / 60 if pace else None
    return {
        "planned runs": len(planned),
        "finished": finished,
        "training hours, finished runs": round(sum(m for m, _ in timed) / 60, 1),
        "hours per run (median)": None if per_run is None else round(per_run, 1),
        "hours left (estimate)": None if per_epoch is None else round(plan.epochs_left(planned, found) * per_epoch, 1),
    }


def compute_table(root: Path) -> pd.DataFrame:
    """One row per profile (the test-only ``smoke`` left out): runs planned and finished, the wall-clock
    hours the finished ones trained (``train_wall_seconds`` of their records, summed), the median per
    run, and the hours the missing runs would take at the median minutes an epoch of its finished runs,
    or, where none has a recorded time, of the finished runs of the profiles of the same data
    (:func:`profiles.same_data`), with whose pace that is ("pace of")."""
    rows = []
    for name in profiles.names():
        if name == "smoke":
            continue
        planned, found = plan.plan(profiles.load(name)), _finished(Path(root), name)
        timed = {other: [r for r in _finished(Path(root), other).values() if r.train_minutes is not None]
                 for other in profiles.same_data(name)}  # fmt: skip
        hours = _hours(planned, found, [r for records_ in timed.values() for r in records_])
        own = any(found[run.config.hash].train_minutes is not None for run in planned if run.config.hash in found)
        lent = " and ".join(other for other, records_ in timed.items() if records_)
        pace = "its runs" if own else f"the runs of {lent} (same data)" if lent and hours["hours left (estimate)"] else None
        rows.append({"profile": name, **hours, "pace of": pace})
    return pd.DataFrame(rows)


def chapter_table(root: Path, name: str = "cpu-full") -> pd.DataFrame:
    """One row per chapter that reads training runs of profile ``name``: the runs it reads and their hours
    (see :func:`compute_table`; chapters share runs, so the rows do not add up to the profile's)."""
    p = profiles.load(name)
    found = _finished(Path(root), name)
    rows = []
    for notebook in reproduce.NOTEBOOKS:
        planned = reproduce.chapter_runs(p, [notebook])
        if planned:
            rows.append({"chapter": notebook, **_hours(planned, found)})
    return pd.DataFrame(rows)


TABLES = {
    "methods": methods_table,
    "profiles": profiles_table,
    "lambdas": lambdas_table,
}
"""The tables of ``{elrt-config}`` that read only the configuration files, by name."""


def citation_bibtex(cff: Path) -> str:
    """The BibTeX entry of the study, made from its ``CITATION.cff`` (title, authors, version, year and
    address where the file has them)."""
    data = yaml.safe_load(Path(cff).read_text())
    authors = " and ".join(
        f"{{{a['name']}}}" if "name" in a else f"{a['family-names']}, {a['given-names']}" for a in data["authors"]
    )
    fields = {"author": authors, "title": f"{{{data['title']}}}", "version": data.get("version")}
    fields["year"] = str(data["date-released"])[:4] if data.get("date-released") else None
    fields["url"] = data.get("repository-code") or data.get("url")
    body = ",\n".join(f"  {k:<7} = {{{v}}}" for k, v in fields.items() if v)
    return f"@software{{elrt_study,\n{body}\n}}"


def bib_entry(bib: Path, key: str) -> str:
    """The entry ``key`` of the BibTeX file ``bib``, as written there (up to its closing brace)."""
    text = Path(bib).read_text()
    start = text.find(f"{{{key},")
    if start < 0:
        raise KeyError(f"no entry {key!r} in {Path(bib).name}")
    start = text.rfind("@", 0, start)
    depth = 0
    for end in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start : end + 1]
    raise ValueError(f"the entry {key!r} of {Path(bib).name} is not closed")
