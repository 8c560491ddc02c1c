"""Claim 5 (efficient training) from the bench records: which records it judges, the verdict, and the
speedups the rank-rule table of the efficiency chapter shows beside accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..config import TrainConfig
from ..machine_load import busy, quiet
from ..records import Record
from . import stats
from .bench_load import BASIS, cifar, device, load, started
from .display import decimals, decisive
from .plan import PlannedRun
from .session import Session
from .verdicts import Claim

__all__ = [
    "CLAIM_SETTING",
    "claim_records",
    "claim_setting",
    "speed_claim",
    "run_speedups",
    "speedups_source",
    "paired_rounds",
    "best_speedup",
]

CLAIM_SETTING = {"variant": "channels_last", "rank_rule": "uniform", "batch_size": TrainConfig().batch_size}
"""The bench setting claim 5 judges, the network and step the accuracy study trains: channels-last factored
layers (the training default), the uniform rank rule, the default batch of 128 images. The bench uses the
machine's threads (its records say how many); the accuracy runs trained one thread each, two side by side."""


def claim_setting(fmt: str, variant: str | None, batch: int | None, macs_ratio: float, ratio: int = 2) -> bool:
    """Whether a bench record (or table row) times Tucker-2 at ``ratio`` fewer MACs in the variant and
    batch of :data:`CLAIM_SETTING` (the rank rule is checked by the caller: claim 5 lists hw ranks beside)."""
    return (
        fmt == "tucker2"
        and round(macs_ratio) == ratio
        and variant == CLAIM_SETTING["variant"]
        and batch == CLAIM_SETTING["batch_size"]
    )


def claim_records(found: list[dict], ratio: int = 2) -> dict[tuple[str, bool], dict]:
    """``(model, hardware-aware) -> record``: among speedup records ``found`` (:func:`load`) of each CIFAR
    model (32x32 inputs) in the :data:`CLAIM_SETTING` at ``ratio`` fewer MACs, timed without a penalty
    and not measured beside other busy processes (:func:`elrt_core.machine_load.quiet` false), the newest
    with uniform ranks (judged by claim 5, whatever its device) and the newest with hardware-aware ranks
    (listed beside), taken from the judged record's device where that device has one, so the two rank
    rules are compared on one machine. One place for this choice: the verdict and the rings of the
    speedup figure."""
    eligible = []
    for r in found:
        rule = r.get("rank_rule", "uniform")
        setting = claim_setting(r["format"], r.get("variant"), r.get("batch_size"), r["macs_ratio"], ratio)
        known_rule = rule == CLAIM_SETTING["rank_rule"] or rule.startswith("hw:")
        plain = r.get("reg", "none") == "none"  # the network's step, no penalty timed with it
        if cifar(r["model"]) and setting and known_rule and plain and not busy(r["provenance"]):
            eligible.append(((r["model"], rule != CLAIM_SETTING["rank_rule"]), r))
    chosen: dict[tuple[str, bool], dict] = {}
    for key, r in sorted(eligible, key=lambda kr: started(kr[1])):  # oldest first: the newest stays
        chosen[key] = r
    for (model, hw), r in list(chosen.items()):
        judged = chosen.get((model, False))
        if hw and judged is not None:
            here = [x for k, x in eligible if k == (model, True) and device(x) == device(judged)]
            chosen[(model, True)] = max(here, key=started) if here else r
    return chosen


def paired_rounds(record: dict) -> tuple[list[float] | None, list[float] | None, str]:
    """The per-round step times (ms) of the dense step a record's low-rank step is judged against, of
    that low-rank step, and the dense variant's name: the fastest dense variant where the record timed
    several (``best_dense``), else the record's own (older records). ``None`` where not recorded."""
    low = record["lowrank"].get("train_rounds_ms")
    best = record.get("best_dense")
    if best:
        return record["dense_variants"][best].get("train_rounds_ms"), low, best
    return record["dense"].get("train_rounds_ms"), low, record.get("variant", "?")


def best_speedup(record: dict) -> float:
    """Median training speedup against the fastest dense variant (older records: the same variant)."""
    return record.get("train_speedup_best", record["train_speedup"])


def _judged_speedup(record: dict) -> tuple[str, str, float]:
    """One judged bench record in words, its verdict word and the upper end of its interval: the
    geometric mean of its paired training-step ratios against the fastest dense variant the record
    timed (:func:`paired_rounds`) with the 95% interval (:func:`stats.ratio_interval`), the device and
    its PyTorch threads; *inconclusive* (upper end NaN) without per-round times (older records) or
    with fewer than 2 rounds. The commit it was measured at is in the chapter's appendix."""
    prov = record["provenance"]
    threads = prov.get("torch_threads")
    where = f"on {prov['device_name']}" + (f", {threads} thread{'s' if threads != 1 else ''}" if threads else "")
    if quiet(prov) is None:
        where += ", background load not recorded"
    dense, low, against = paired_rounds(record)
    if not dense or len(dense) < 2:
        return (
            f"{record['model']} {best_speedup(record):.2f}x (median; no interval: the record has no per-step times) {where}",
            "inconclusive",
            math.nan,
        )
    ratio, lo, hi = stats.ratio_interval(dense, low)
    word = stats.verdict(math.log(lo), math.log(hi))
    return (
        f"{record['model']} {ratio:.2f}x against dense {against.replace('_', '-')} (geometric mean of {len(dense)} paired "
        f"step ratios, {100 * stats.CONFIDENCE:g}% CI {decimals(decisive(lo, 1.0))} to {decimals(decisive(hi, 1.0))}) {where}",
        word,
        hi,
    )


def speed_claim(session: Session, ratio: int = 2) -> Claim:
    """Claim 5 (efficient training): the training-step speedup of Tucker-2 over the fastest dense step
    at ``ratio`` fewer MACs (:func:`paired_rounds`), per CIFAR model (32x32 inputs), in the
    :data:`CLAIM_SETTING` and from the newest such record
    of each model that was not measured beside busy processes (whatever its device; other variants and
    older records are not chosen among; :func:`claim_records`).
    Each model's speedup is the geometric mean of its paired step ratios with a 95% interval
    (:func:`_judged_speedup`): *supported* if every model's interval lies above 1, *contradicted* if
    every one lies below, else *inconclusive*. The hardware-aware ranks' speedups (same variant and
    batch, from the judged record's machine where it has one) are listed beside, not judged: they train a different network (see their accuracy in
    chapter 6)."""
    from .verdicts import Claim

    newest = claim_records(load(session.root, "speedup"), ratio)
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
        f"{m} {best_speedup(r):.2f}x (median) on {r['provenance']['device_name']}"
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
        f"Tucker-2 at {ratio}x fewer MACs with uniform ranks, training step vs dense at its fastest "
        f"(the fastest dense variant the bench timed; channels-last low-rank network, batch {CLAIM_SETTING['batch_size']}, steps timed in turns): {effect}",
        word,
        f"bench records of {len(judged)} network{'s' if len(judged) != 1 else ''}, the newest record of each not measured beside busy processes; the interval covers the "
        "step-to-step noise of one measurement on one machine, not other machines or other measurements (methods page)",
    )


def run_speedups(session: Session, runs: Sequence[tuple[PlannedRun, Record]]) -> tuple[dict[str, float], str | None]:
    """Method key -> the measured training-step speedup over the fastest dense step (median,
    :func:`best_speedup`) of the network its runs train,
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
            here = by_device.setdefault(device(r), {})
            if key not in here or started(r) > started(here[key]):
                here[key] = r
    if not by_device:
        return {}, None
    chosen = max(by_device, key=lambda d: (len(by_device[d]), max(map(started, by_device[d].values()))))
    return {method: best_speedup(r) for key, r in by_device[chosen].items() for method in wanted[key]}, chosen


def speedups_source(speedups: dict[str, float], device: str | None, labels: dict[str, str]) -> str:
    """Where the speedups of :func:`run_speedups` come from, for a caption: the device, and the methods
    of ``labels`` (method key -> label) it has no record of."""
    if device is None:
        return "no bench record of these networks yet"
    missing = [label for m, label in labels.items() if m not in speedups]
    return f"on {device}" + (f"; no record there of {' · '.join(missing)}" if missing else ", one machine for all")
