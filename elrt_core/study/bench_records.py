"""Tables and figures of the efficiency chapter, read from ``elrt bench`` records (JSON)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import yaml

from .. import models
from ..bench import PARTS, VARIANT_TEXT
from ..config import TrainConfig
from ..machine_load import busy, quiet
from . import stats
from .display import decimals, decisive

if TYPE_CHECKING:  # for annotations only, never imported at run time
    from ..records import Record
    from .plan import PlannedRun
    from .session import Session
    from .verdicts import Claim

__all__ = [
    "load",
    "speedup_table",
    "breakdown_table",
    "conv_speedups",
    "layer_table",
    "targets_text",
    "speedup_figure",
    "variants_text",
    "regularizer_overhead",
    "thresholds",
    "thresholds_history",
    "speed_claim",
    "run_speedups",
    "speedups_source",
    "CLAIM_SETTING",
    "reference_table",
    "THRESHOLDS_FILE",
    "BENCH_FOLDER",
    "BASIS",
]

BENCH_FOLDER = "bench"

BASIS = "bench records made by `elrt bench`, not training runs; each row names its device"
"""What the efficiency tables and figures rest on, for their captions (see :meth:`Session.caption`)."""

THRESHOLDS_FILE = Path(__file__).resolve().parents[1] / "speed_thresholds.yaml"
"""The speedups and penalty times the project's issues set as thresholds, and when they were set (one data
file, read by :func:`thresholds` and :func:`thresholds_history`)."""


def load(root: Path, kind: str) -> list[dict]:
    """Every bench record of ``kind`` (``"speedup"`` or ``"regularizer_overhead"``) under ``root/bench``."""
    out = []
    for path in sorted((Path(root) / BENCH_FOLDER).rglob("*.json")):
        data = json.loads(path.read_text())
        if data.get("kind") == kind:
            out.append({**data, "path": str(path)})
    return out


def _rounded(value: float | None, digits: int) -> float | None:
    """``round(value, digits)``, ``None`` for a value a record did not measure (no breakdown on CUDA)."""
    return None if value is None else round(value, digits)


def speedup_table(session: Session) -> pd.DataFrame | None:
    """One row per speedup record: device, model, format, rank rule, MAC reduction, measured speedups,
    ceiling, timed steps per model, the cores other processes kept busy meanwhile (empty where not
    measured; :mod:`elrt_core.machine_load`), ``busy`` (more than that is quiet), and ``judged``: whether claim 5 judges the record (:func:`_claim_records`). A record
    without a profiler breakdown (CUDA) has no conv share and no ceiling (empty)."""
    found = load(session.root, "speedup")
    judged = {r["path"] for (_, hw), r in _claim_records(found).items() if not hw}
    rows = [
        {
            "device": r["provenance"]["device_name"],
            "model": r["model"],
            "format": r["format"],
            "rank_rule": r.get("rank_rule", "uniform"),
            "variant": r["variant"],
            "batch": r["batch_size"],
            "macs_reduction": round(r["macs_ratio"], 2),
            "train_speedup": r["train_speedup"],  # unrounded: each table formats it once
            "infer_speedup": r["infer_speedup"],
            "amdahl_ceiling": _rounded(r.get("amdahl_ceiling"), 2),
            "conv_share_dense": _rounded((r["dense"].get("breakdown") or {}).get("conv"), 3),
            "memory_ratio": round(r["memory_ratio"], 2) if r.get("memory_ratio") else None,
            "dense_step_ms": round(r["dense"]["train_step_ms"], 1),
            "lowrank_step_ms": round(r["lowrank"]["train_step_ms"], 1),
            "steps": r.get("steps"),
            "background_load_cores": r["provenance"].get("background_load_cores"),
            "busy": busy(r["provenance"]),
            "judged": r["path"] in judged,
        }
        for r in found
    ]
    return pd.DataFrame(rows) if rows else None


def breakdown_table(session: Session) -> pd.DataFrame | None:
    """Where a training step's time goes (ms per part: the profiler's shares of :func:`elrt_core.bench.breakdown`
    times the record's median step time), dense and low-rank, for every speedup record with a breakdown;
    a part that an older record did not measure is left empty."""
    rows = []
    for r in load(session.root, "speedup"):
        for side in ("dense", "lowrank"):
            shares = r[side].get("breakdown")
            if not shares:
                continue
            step = r[side]["train_step_ms"]
            rows.append(
                {
                    "device": r["provenance"]["device_name"],
                    "model": r["model"],
                    "format": r["format"],
                    "macs_reduction": round(r["macs_ratio"], 2),
                    "variant": r["variant"],
                    "network": side,
                    "step_ms": round(step, 1),
                    **{f"{p}_ms": round(step * shares[p], 1) if p in shares else None for p in PARTS},
                }
            )
    return pd.DataFrame(rows) if rows else None


def conv_speedups(session: Session) -> pd.DataFrame | None:
    """What limits the speedup, per speedup record with breakdowns: how much faster the convolutions
    of the low-rank network run than the dense network's (``conv_speedup``, to compare with
    ``macs_reduction``) and how the rest of the step compares (``rest_ratio`` = low-rank / dense
    time of everything but convolutions; 1 when the rest costs the same)."""
    rows = []
    for r in load(session.root, "speedup"):
        d, lr = r["dense"].get("breakdown"), r["lowrank"].get("breakdown")
        if not d or not lr:
            continue
        td, tl = r["dense"]["train_step_ms"], r["lowrank"]["train_step_ms"]
        rows.append(
            {
                "device": r["provenance"]["device_name"],
                "model": r["model"],
                "format": r["format"],
                "variant": r["variant"],
                "batch": r["batch_size"],
                "macs_reduction": round(r["macs_ratio"], 2),
                "dense_conv_ms": round(td * d["conv"], 1),
                "lowrank_conv_ms": round(tl * lr["conv"], 1),
                "conv_speedup": round(td * d["conv"] / (tl * lr["conv"]), 2),
                "rest_ratio": round(tl * (1 - lr["conv"]) / (td * (1 - d["conv"])), 2),
                "train_speedup": round(r["train_speedup"], 2),
            }
        )
    return pd.DataFrame(rows) if rows else None


def layer_table(session: Session) -> pd.DataFrame | None:
    """One row per converted conv shape of every layer-times record (``elrt bench --layers``), and
    one ``all`` row per record with the layer-count-weighted totals."""
    rows = []
    for r in load(session.root, "layer_times"):
        head = {"device": r["provenance"]["device_name"], "model": r["model"], "format": r["format"], "batch": r["batch_size"]}
        for x in r["rows"]:
            rows.append(
                {
                    **head,
                    "layer": f"{x['in_channels']}->{x['out_channels']} {x['kernel'][0]}x{x['kernel'][1]} "
                    f"s{x['stride'][0]} on {x['in_hw'][0]}x{x['in_hw'][1]}",
                    "layers": x["layers"],
                    "ranks": tuple(x["ranks"]),
                    "macs_reduction": round(x["macs_ratio"], 2),
                    "dense_ms": round(x["dense_ms"], 2),
                    "lowrank_ms": round(x["lowrank_ms"], 2),
                    "speedup": round(x["speedup"], 2),
                    "aligned_ranks": tuple(x["aligned_ranks"]),
                    "aligned_macs_reduction": round(x["aligned_macs_ratio"], 2),
                    "aligned_ms": round(x["aligned_ms"], 2),
                    "aligned_speedup": round(x["aligned_speedup"], 2),
                }
            )
        t = r["totals"]
        rows.append(
            {
                **head,
                "layer": "all converted layers",
                "layers": sum(x["layers"] for x in r["rows"]),
                "macs_reduction": round(t["macs_ratio"], 2),
                "speedup": round(t["speedup"], 2),
                "aligned_macs_reduction": round(t["aligned_macs_ratio"], 2),
                "aligned_speedup": round(t["aligned_speedup"], 2),
            }
        )
    return pd.DataFrame(rows) if rows else None


def targets_text(session: Session) -> str:
    """One item of a Markdown list per device: the best measured Tucker-2 training speedup of each model at each
    MAC reduction (over variants, rank rules and batch sizes), then each threshold of
    :func:`thresholds`, reached or not; records measured beside busy processes are left out."""
    best: dict[str, dict[str, dict[int, float]]] = {}
    for r in load(session.root, "speedup"):
        if r["format"] == "tucker2" and not busy(r["provenance"]):
            per = best.setdefault(r["provenance"]["device_name"], {}).setdefault(r["model"], {})
            k = round(r["macs_ratio"])
            per[k] = max(per.get(k, 0.0), r["train_speedup"])
    goals = thresholds(session)
    sentences = []
    for device in sorted(set(best) | (set(goals["device"]) if goals is not None else set())):
        models = best.get(device, {})
        text = f"On {device}:"
        if models:
            text += (
                " best measured training-step speedup of Tucker-2 over dense, over every variant, rank rule and batch "
                "size: "
                + "; ".join(
                    f"{m}: " + ", ".join(f"{decimals(_near_limit(v, m, k))}x at {k}x fewer MACs" for k, v in sorted(ks.items()))
                    for m, ks in sorted(models.items())
                )
                + "."
            )
        rows = goals[goals["device"] == device].sort_values("threshold") if goals is not None else pd.DataFrame()
        speed = [
            f"{t.threshold} {'reached' if t.met else 'not reached'} ({decimals(t.measured)}x)"
            for t in rows.itertuples()
            if "speedup" in t.threshold
        ]
        regs = [t for t in rows.itertuples() if "penalty" in t.threshold]
        if speed:
            text += " Thresholds: " + "; ".join(speed) + "."
        if regs:
            worst = max(regs, key=lambda t: t.measured)
            limit = max(_thresholds()["penalty_pct"].values())
            text += (
                f" The penalties with a threshold ({', '.join(k.upper() for k in _thresholds()['penalty_pct'])}) take at most "
                f"{decimals(worst.measured)}% of a step (threshold {limit:g}%: {'reached' if all(t.met for t in regs) else 'not reached'}); "
                "the others' times are in the overhead table, without a threshold."
            )
        sentences.append(text)
    if not sentences:
        return "No bench records yet: run `elrt bench` (see the README)."
    return "One item per device.\n\n" + "\n".join(f"- {text}" for text in sentences)  # a Markdown list


def speedup_figure(table: pd.DataFrame) -> plt.Figure:
    """Measured training speedup against MAC reduction (rows of :func:`speedup_table`) of the Tucker-2
    records in the :data:`CLAIM_SETTING` variant and batch (the other formats, variants and batches are in
    the table): one panel per device, colour for the rank rule (uniform or hardware-aware), marker for the
    model, the ideal line dashed. The records claim 5 judges (column ``judged``) are ringed; records
    measured beside busy processes (``busy``) are left out."""
    setting = (
        (table["format"] == "tucker2")
        & (table["variant"] == CLAIM_SETTING["variant"])
        & (table["batch"] == CLAIM_SETTING["batch_size"])
    )
    table = table[setting & ~table["busy"]]  # busy: measured beside busy processes, so it times the sharing, not the network
    if table.empty:
        fig, ax = plt.subplots(figsize=(5.2, 1.2))
        ax.axis("off")
        ax.text(
            0.5, 0.5, "no Tucker-2 speedup record of the training setting measured on a quiet machine", ha="center", va="center"
        )
        return fig
    df = table.assign(ranks=table["rank_rule"].map(lambda r: "hardware-aware" if r.startswith("hw:") else r))
    devices, models_order = list(dict.fromkeys(df["device"])), sorted(set(df["model"]))  # one marker per model in every panel
    cols = min(2, len(devices))  # two panels a row: wider rows shrink to unreadable in the book's text column
    rows = -(-len(devices) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), sharey=True, squeeze=False)
    for ax in list(axes.flat)[len(devices) :]:
        ax.set_visible(False)
    top = max(df["macs_reduction"].max(), df["train_speedup"].max()) * 1.1
    for i, (ax, device) in enumerate(zip(axes.flat, devices)):
        here = df[df["device"] == device]
        sns.scatterplot(
            here,
            x="macs_reduction",
            y="train_speedup",
            hue="ranks",
            style="model",
            s=70,
            ax=ax,
            hue_order=["uniform", "hardware-aware"],
            style_order=models_order,
        )
        ring = here[here["judged"]]
        ax.scatter(
            ring["macs_reduction"], ring["train_speedup"], s=260, facecolors="none", edgecolors="black", label="judged by claim 5"
        )
        ax.plot([1, top], [1, top], "--", color="gray", label="ideal (speedup = MAC reduction)")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(device, fontsize="small")
        ax.set_xlabel("MAC reduction (dense / low-rank)")
        ax.set_ylabel("measured training-step speedup")
        if i == 0:
            ax.legend(fontsize="x-small", title=None)
        else:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


def variants_text() -> str:
    """The bench variants and device names in words (Markdown list), from :data:`elrt_core.bench.VARIANT_TEXT`."""
    items = [f"- *{name}*: {text}" for name, text in VARIANT_TEXT.items()]
    items.append(
        "- *devices*: a CPU is named by its model and widest vector unit (*AMD EPYC (avx512f)*, *AMD EPYC (avx2)*); "
        "*AMD EPYC* alone and *x86_64* (no model name available) are records made before the name carried the vector "
        "unit, so they may be either machine; a GPU by its CUDA device name."
    )
    return "\n".join(items)


def regularizer_overhead(session: Session) -> pd.DataFrame | None:
    """One row per regularizer of every overhead record, with its device (older records of a device included)."""
    rows = []
    for r in load(session.root, "regularizer_overhead"):
        for row in r["rows"]:
            rows.append({"device": r["provenance"]["device_name"], "model": r["model"], **row})
    return pd.DataFrame(rows) if rows else None


def _thresholds() -> dict:
    return yaml.safe_load(THRESHOLDS_FILE.read_text())


def _near_limit(speedup: float, model: str, ratio: int) -> float:
    """``speedup`` rounded once (:func:`display.decisive`) against each speedup threshold of ``model`` at
    ``ratio`` fewer MACs, so a best value printed beside a threshold never reads as reaching it when
    it does not."""
    limits = [t["min_speedup"] for t in _thresholds()["speedup"] if (t["model"], t["macs_reduction"]) == (model, ratio)]
    rounded = [decisive(speedup, limit) for limit in limits] or [decisive(speedup, math.inf)]
    return min(rounded, key=lambda r: abs(r - speedup))  # the most decimals any of the limits needs


def thresholds_history() -> str:
    """When and how the thresholds of :func:`thresholds` were set (``history`` of ``speed_thresholds.yaml``)."""
    return _thresholds()["history"]


def thresholds(session: Session) -> pd.DataFrame | None:
    """Each threshold of ``speed_thresholds.yaml`` against the records: the best measured training
    speedup over the variants and rank rules of each device for that model, MAC reduction and batch
    size (and that record's Amdahl ceiling, empty without a breakdown), and each regularizer's
    penalty time as a share of the step; ``met`` says whether the measurement reaches it. ``measured``
    is rounded once, by :func:`display.decisive`: to 2 decimals, or more where 2 would carry it across
    its threshold; print it with :func:`display.decimals`."""
    limits = _thresholds()
    rows = []
    for r in load(session.root, "speedup"):
        if busy(r["provenance"]):  # measured beside busy processes: the sharing, not the network
            continue
        for t in limits["speedup"]:
            if (r["model"], r["format"], round(r["macs_ratio"]), r["batch_size"]) == (
                t["model"],
                t["format"],
                t["macs_reduction"],
                t["batch"],
            ):
                rows.append(
                    {
                        "device": r["provenance"]["device_name"],
                        "threshold": f"{t['model']} {t['format']} at {t['macs_reduction']}x fewer MACs, batch {t['batch']}: "
                        f"training speedup >= {t['min_speedup']:g}x",
                        "measured": decisive(r["train_speedup"], t["min_speedup"]),
                        "raw": r["train_speedup"],
                        "variant": r["variant"],
                        "rank_rule": r.get("rank_rule", "uniform"),
                        "amdahl_ceiling": _rounded(r.get("amdahl_ceiling"), 2),
                        "met": r["train_speedup"] >= t["min_speedup"],
                    }
                )
    speed = pd.DataFrame(rows)
    if not speed.empty:  # keep the best variant per threshold and device
        speed = speed.sort_values("raw", ascending=False, kind="stable").drop_duplicates(["device", "threshold"])
        speed = speed.drop(columns="raw")
    rows = []
    for r in load(session.root, "regularizer_overhead"):
        for row in r["rows"] if not busy(r["provenance"]) else []:
            if row["regularizer"] in limits["penalty_pct"] and "penalty_pct" in row:
                limit = limits["penalty_pct"][row["regularizer"]]
                rows.append(
                    {
                        "device": r["provenance"]["device_name"],
                        "threshold": f"{r['model']} {row['regularizer'].upper()} penalty <= {limit:g}% of the step",
                        "measured": decisive(row["penalty_pct"], limit),
                        "variant": r["variant"],
                        "rank_rule": r.get("rank_rule", "uniform"),
                        "amdahl_ceiling": None,
                        "met": row["penalty_pct"] <= limit,
                    }
                )
    frames = [f for f in (speed, pd.DataFrame(rows)) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else None


def _started(record: dict) -> datetime:
    """When a bench record's measurement started (UTC where the time names no offset; the earliest
    time where the record names none)."""
    t = datetime.fromisoformat(record["provenance"].get("started") or "0001-01-01T00:00:00")
    return t if t.tzinfo else t.replace(tzinfo=UTC)


CLAIM_SETTING = {"variant": "channels_last", "rank_rule": "uniform", "batch_size": TrainConfig().batch_size}
"""The bench setting claim 5 judges, the network and step the accuracy study trains: channels-last factored
layers (the training default), the uniform rank rule, the default batch of 128 images. The bench uses the
machine's threads (its records say how many); the accuracy runs trained one thread each, two side by side."""


def _claim_setting(fmt: str, variant: str | None, batch: int | None, macs_ratio: float, ratio: int = 2) -> bool:
    """Whether a bench record (or table row) times Tucker-2 at ``ratio`` fewer MACs in the variant and
    batch of :data:`CLAIM_SETTING` (the rank rule is checked by the caller: claim 5 lists hw ranks beside)."""
    return (
        fmt == "tucker2"
        and round(macs_ratio) == ratio
        and variant == CLAIM_SETTING["variant"]
        and batch == CLAIM_SETTING["batch_size"]
    )


def _claim_records(found: list[dict], ratio: int = 2) -> dict[tuple[str, bool], dict]:
    """``(model, hardware-aware) -> record``: among speedup records ``found`` (:func:`load`) of each CIFAR
    model (32x32 inputs) in the :data:`CLAIM_SETTING` at ``ratio`` fewer MACs, timed without a penalty
    and not measured beside other busy processes (:func:`elrt_core.machine_load.quiet` false), the newest
    with uniform ranks (judged by claim 5, whatever its device) and the newest with hardware-aware ranks
    (listed beside), taken from the judged record's device where that device has one, so the two rank
    rules are compared on one machine. One place for this choice: the verdict and the rings of the
    speedup figure."""
    eligible = []
    for r in found:
        cifar = models.input_shape(r["model"])[1:] == (32, 32)
        rule = r.get("rank_rule", "uniform")
        setting = _claim_setting(r["format"], r.get("variant"), r.get("batch_size"), r["macs_ratio"], ratio)
        known_rule = rule == CLAIM_SETTING["rank_rule"] or rule.startswith("hw:")
        plain = r.get("reg", "none") == "none"  # the network's step, no penalty timed with it
        if cifar and setting and known_rule and plain and not busy(r["provenance"]):
            eligible.append(((r["model"], rule != CLAIM_SETTING["rank_rule"]), r))
    chosen: dict[tuple[str, bool], dict] = {}
    for key, r in sorted(eligible, key=lambda kr: _started(kr[1])):  # oldest first: the newest stays
        chosen[key] = r
    for (model, hw), r in list(chosen.items()):
        judged = chosen.get((model, False))
        if hw and judged is not None:
            here = [x for k, x in eligible if k == (model, True) and _device(x) == _device(judged)]
            chosen[(model, True)] = max(here, key=_started) if here else r
    return chosen


def _device(record: dict) -> str:
    return record["provenance"]["device_name"]


def _judged_speedup(record: dict) -> tuple[str, str, float]:
    """One judged bench record in words, its verdict word and the upper end of its interval: the
    geometric mean of its paired training-step ratios with the 95% interval
    (:func:`stats.ratio_interval`), the device, its PyTorch threads and the commit it was measured at;
    *inconclusive* (upper end NaN) without per-round times (older records) or 2 rounds."""
    prov = record["provenance"]
    threads = prov.get("torch_threads")
    where = (
        f"on {prov['device_name']}"
        + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "")
        + f", commit {str(prov.get('commit', '?'))[:7]}{' (uncommitted changes)' if prov.get('dirty') else ''}"
    )
    if quiet(prov) is None:
        where += ", background load not recorded"
    dense, low = record["dense"].get("train_rounds_ms"), record["lowrank"].get("train_rounds_ms")
    if not dense or len(dense) < 2:
        return (
            f"{record['model']} {record['train_speedup']:.2f}x (median; no interval: the record has no per-step times) {where}",
            "inconclusive",
            math.nan,
        )
    ratio, lo, hi = stats.ratio_interval(dense, low)
    word = stats.verdict(math.log(lo), math.log(hi))
    return (
        f"{record['model']} {ratio:.2f}x (geometric mean of {len(dense)} paired step ratios, {100 * stats.CONFIDENCE:g}% CI "
        f"{decimals(decisive(lo, 1.0))} to {decimals(decisive(hi, 1.0))}) {where}",
        word,
        hi,
    )


def speed_claim(session: Session, ratio: int = 2) -> Claim:
    """Claim 5 (efficient training): the training-step speedup of Tucker-2 over dense at ``ratio`` fewer
    MACs, per CIFAR model (32x32 inputs), in the :data:`CLAIM_SETTING` and from the newest such record
    of each model that was not measured beside busy processes (whatever its device; other variants and
    older records are not chosen among; :func:`_claim_records`).
    Each model's speedup is the geometric mean of its paired step ratios with a 95% interval
    (:func:`_judged_speedup`): *supported* if every model's interval lies above 1, *contradicted* if
    every one lies below, else *inconclusive*. The hardware-aware ranks' speedups (same variant and
    batch, from the judged record's machine where it has one) are listed beside, not judged: they train a different network (see their accuracy in
    chapter 6)."""
    from .verdicts import Claim

    newest = _claim_records(load(session.root, "speedup"), ratio)
    judged = [_judged_speedup(r) for (_, hw), r in sorted(newest.items()) if not hw]
    if not judged:
        return Claim(
            f"no bench record of a Tucker-2 CIFAR network at {ratio}x fewer MACs with uniform ranks yet", "inconclusive", BASIS
        )
    words = {word for _, word, _ in judged}
    word = words.pop() if len(words) == 1 and words <= {"supported", "contradicted"} else "inconclusive"
    effect = "; ".join(text for text, _, _ in judged)
    judged_devices = {r["provenance"]["device_name"] for (_, hw), r in newest.items() if not hw}
    aware = [
        f"{m} {r['train_speedup']:.2f}x (median) on {r['provenance']['device_name']}"
        + ("" if r["provenance"]["device_name"] in judged_devices else ", another machine than the judged records")
        for (m, hw), r in sorted(newest.items())
        if hw
    ]
    if aware:
        effect += f" (with the hardware-aware ranks, not judged: {'; '.join(aware)})"
    highs = [hi for _, _, hi in judged]
    if word != "supported" and not any(math.isnan(hi) for hi in highs):
        bound = math.ceil(max(highs) * 100) / 100  # rounded up: every interval ends at or below it
        effect += f". With uniform ranks, each network's {100 * stats.CONFIDENCE:g}% interval ends at or below {bound:.2f}x"
    return Claim(
        f"Tucker-2 at {ratio}x fewer MACs with uniform ranks, training step vs dense (channels-last, batch "
        f"{CLAIM_SETTING['batch_size']}, dense and low-rank steps timed in turns): {effect}",
        word,
        f"bench records of {len(judged)} network{'s' if len(judged) != 1 else ''}, the newest record of each not measured beside busy processes; the interval covers the "
        "step-to-step noise of one measurement on one machine, not other machines or other measurements (methods page)",
    )


def run_speedups(session: Session, runs: Sequence[tuple[PlannedRun, Record]]) -> tuple[dict[str, float], str | None]:
    """Method key -> the measured training-step speedup over dense (median) of the network its runs train,
    and the device it was measured on: the newest speedup record in the :data:`CLAIM_SETTING` variant and
    batch with the runs' model, format, FLOPs reduction, rank rule and regularizer (``runs``:
    ``(PlannedRun, Record)`` pairs), not measured beside busy processes, all from one device: the one with
    records of the most of these networks (ties: the newest record), so the methods are compared on one
    machine. Methods with no such record (dense, most regularized ones) are left out; ``({}, None)``
    without any."""
    wanted: dict[tuple, set[str]] = {}  # bench key -> the methods that train that network
    for run, _ in runs:
        if run.config.format != "dense":
            c = run.config
            wanted.setdefault((c.model, c.format, c.flops_ratio, c.rank_rule, c.reg), set()).add(run.method)
    by_device: dict[str, dict[tuple, dict]] = {}
    for r in load(session.root, "speedup"):
        key = (r["model"], r["format"], r.get("flops_ratio"), r.get("rank_rule", "uniform"), r.get("reg", "none"))
        setting = r.get("variant") == CLAIM_SETTING["variant"] and r.get("batch_size") == CLAIM_SETTING["batch_size"]
        if key in wanted and setting and not busy(r["provenance"]):
            here = by_device.setdefault(_device(r), {})
            if key not in here or _started(r) > _started(here[key]):
                here[key] = r
    if not by_device:
        return {}, None
    device = max(by_device, key=lambda d: (len(by_device[d]), max(map(_started, by_device[d].values()))))
    return {method: r["train_speedup"] for key, r in by_device[device].items() for method in wanted[key]}, device


def speedups_source(speedups: dict[str, float], device: str | None, labels: dict[str, str]) -> str:
    """Where the speedups of :func:`run_speedups` come from, for a caption: the device, and the methods
    of ``labels`` (method key -> label) it has no record of."""
    if device is None:
        return "no bench record of these networks yet"
    missing = [label for m, label in labels.items() if m not in speedups]
    return f"on {device}" + (f"; no record there of {' · '.join(missing)}" if missing else ", one machine for all")


def reference_table(session: Session) -> pd.DataFrame | None:
    """One row per reference record (``elrt bench --reference``): training-step times of dense, this
    project's Tucker-2 network and the TensorLy-Torch one, measured in turns in one run, and the ratios."""
    rows = [
        {
            "device": r["provenance"]["device_name"],
            "model": r["model"],
            "macs_reduction": r["macs_ratio"],
            "variant": r["variant"],
            "batch": r["batch_size"],
            "dense_ms": r["train_step_ms"]["dense"],
            "ours_ms": r["train_step_ms"]["ours"],
            "reference_ms": r["train_step_ms"]["reference"],
            "ours_vs_dense": r["ours_vs_dense"],
            "reference_vs_dense": r["reference_vs_dense"],
            "ours_vs_reference": r["ours_vs_reference"],
            "reference": r["reference"],
        }
        for r in load(session.root, "reference")
    ]
    return pd.DataFrame(rows) if rows else None
