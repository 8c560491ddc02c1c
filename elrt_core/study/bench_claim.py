"""Claim 5 (efficient training) from the bench records: which records it judges, the verdict, and the
speedups the rank-rule table of the efficiency chapter shows beside accuracy."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..bench.targets import thresholds_file
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
    "claim_setting",
    "speed_claim",
    "judged_records",
    "unjudged_machines",
    "memory_ratios",
    "smallest_speedup",
    "run_speedups",
    "speedups_source",
    "paired_rounds",
    "best_speedup",
]

CLAIM_SETTING = {"variant": "channels_last", "rank_rule": "uniform", "batch_size": TrainConfig().batch_size}
"""The bench setting claim 5 judges, the network and step the accuracy study trains: channels-last factored
layers (the training default), the uniform rank rule, the default batch of 128 images. The bench uses the
machine's threads (its records say how many); the accuracy runs trained one thread each, two side by side."""


def smallest_speedup() -> float:
    """Claim 5's smallest speedup of interest ``s`` (``claim5_smallest_speedup`` of
    ``speed_thresholds.yaml``): a speedup interval inside ``(1/s, s)`` reads *no meaningful effect*."""
    return float(thresholds_file()["claim5_smallest_speedup"])


def claim_setting(fmt: str, variant: str | None, batch: int | None, macs_ratio: float, ratio: int = 2) -> bool:
    """Whether a bench record (or table row) times Tucker-2 at ``ratio`` fewer MACs in the variant and
    batch of :data:`CLAIM_SETTING` (the rank rule is checked by the caller: claim 5 lists hw ranks beside)."""
    return (
        fmt == "tucker2"
        and round(macs_ratio) == ratio
        and variant == CLAIM_SETTING["variant"]
        and batch == CLAIM_SETTING["batch_size"]
    )


def _in_claim(record: dict, ratio: int) -> bool:
    """Whether a speedup record times the network claim 5 is about: a CIFAR model (32x32 inputs) in the
    :data:`CLAIM_SETTING` at ``ratio`` fewer MACs, uniform or hardware-aware ranks, no penalty timed
    with the step."""
    rule = record.get("rank_rule", "uniform")
    setting = claim_setting(record["format"], record.get("variant"), record.get("batch_size"), record["macs_ratio"], ratio)
    known_rule = rule == CLAIM_SETTING["rank_rule"] or rule.startswith("hw:")
    return cifar(record["model"]) and setting and known_rule and record.get("reg", "none") == "none"


def _key(record: dict) -> tuple[str, bool]:
    """``(model, hardware-aware ranks)`` of a record."""
    return record["model"], record.get("rank_rule", "uniform") != CLAIM_SETTING["rank_rule"]


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


def judged_records(found: list[dict], ratio: int = 2) -> dict[str, dict[tuple[str, bool], list[dict]]]:
    """``device -> (model, hardware-aware) -> records``, oldest first: every record claim 5 judges on
    each machine. Among speedup records ``found`` (:func:`load`): CIFAR models (32x32 inputs) in the
    :data:`CLAIM_SETTING` at ``ratio`` fewer MACs, uniform or hardware-aware ranks, timed without a
    penalty, measured on a machine known to be quiet (:func:`elrt_core.machine_load.quiet` true: records
    that did not measure the load are left out) and with at least 2 paired step times against the dense
    step they are judged against (:func:`paired_rounds`), so each has an interval."""
    out: dict[str, dict[tuple[str, bool], list[dict]]] = {}
    for r in sorted(found, key=started):
        dense, low, _ = paired_rounds(r)
        if _in_claim(r, ratio) and quiet(r["provenance"]) and dense and low and len(dense) >= 2:
            out.setdefault(device(r), {}).setdefault(_key(r), []).append(r)
    return out


def unjudged_machines(found: list[dict], ratio: int = 2) -> list[str]:
    """The machines with records of claim 5's setting (:func:`_in_claim`) of which none is judged
    (:func:`judged_records`): they did not measure the machine's load, were measured beside busy
    processes, or kept fewer than 2 paired step times. Their speedups are shown in the chapter, not judged."""
    judged = set(judged_records(found, ratio))
    return sorted({device(r) for r in found if _in_claim(r, ratio)} - judged)


def _judged(record: dict) -> tuple[str, str, float, str]:
    """One judged record: its speedup in words (the geometric mean of its paired step ratios against
    the dense variant :func:`paired_rounds` names, with its 95% interval: ``0.77x (0.74 to 0.80)``),
    its verdict word with the smallest speedup of interest (:func:`smallest_speedup`), the upper end of
    its interval and that dense variant's name."""
    dense, low, against = paired_rounds(record)
    ratio, lo, hi = stats.ratio_interval(dense, low)
    word = stats.verdict(math.log(lo), math.log(hi), smallest=math.log(smallest_speedup()))
    text = f"{ratio:.2f}x ({decimals(decisive(lo, 1.0))} to {decimals(decisive(hi, 1.0))})"
    return text, word, hi, against.replace("_", "-")


def _agreed(words: Sequence[str]) -> str:
    """The one word all ``words`` share when it is decisive (supported, contradicted, no meaningful
    effect), else *inconclusive*: records or machines that disagree decide nothing."""
    decisive_words = {"supported", "contradicted", "no meaningful effect"}
    return words[0] if words and len(set(words)) == 1 and words[0] in decisive_words else "inconclusive"


def memory_ratios(record: dict) -> str:
    """Parameters, optimizer state and activation memory (bytes kept for backward, at the record's
    recompute level and with every intermediate recomputed) of the low-rank network over dense, from a
    record that measured them (``""`` for older records)."""
    low, dense = record["lowrank"], record["dense"]
    if not all(k in low and dense.get(k) for k in ("param_bytes", "optimizer_bytes", "activation_bytes")):
        return ""
    text = (
        f"parameters {low['param_bytes'] / dense['param_bytes']:.2f}x, optimizer state "
        f"{low['optimizer_bytes'] / dense['optimizer_bytes']:.2f}x, activation memory "
        f"{low['activation_bytes'] / dense['activation_bytes']:.2f}x"
    )
    every = record.get("lowrank_levels", {}).get("all", {}).get("activation_bytes")
    return text + (f" ({every / dense['activation_bytes']:.2f}x recomputing every intermediate)" if every else "")


def _machine(name: str, by_key: dict[tuple[str, bool], list[dict]]) -> tuple[str, str, list[float]]:
    """One machine's judgement in words, its word (the uniform-rank records of every model agree:
    :func:`_agreed`) and the upper ends of its uniform-rank intervals. Hardware-aware ranks are listed
    with their intervals beside, not judged (they train a different network); the memory ratios of
    each model's newest record follow."""
    speeds, memories, words, highs, against = [], [], [], [], set()
    for model in sorted({m for m, _ in by_key}):
        uniform = [_judged(r) for r in by_key.get((model, False), [])]
        aware = [_judged(r) for r in by_key.get((model, True), [])]
        words += [j[1] for j in uniform]
        highs += [j[2] for j in uniform]
        against |= {j[3] for j in uniform + aware}
        text = f"{model} " + (", ".join(j[0] for j in uniform) if uniform else "no uniform-rank record")
        speeds.append(text + (f", hardware-aware ranks {', '.join(j[0] for j in aware)}" if aware else ""))
        memory = memory_ratios((by_key.get((model, False)) or by_key[(model, True)])[-1])
        memories += [f"{model} {memory}"] if memory else []
    uniform_n = sum(len(v) for (_, hw), v in by_key.items() if not hw)
    aware_n = sum(len(v) for (_, hw), v in by_key.items() if hw)
    counted = f"{uniform_n} uniform-rank record{'s' if uniform_n != 1 else ''}" + (
        f", {aware_n} hardware-aware" if aware_n else ""
    )
    text = f"on {name} ({counted}, against dense {' or '.join(sorted(against))}): " + "; ".join(speeds) + f" [{_agreed(words)}]"
    if memories:
        text += "; low-rank / dense: " + "; ".join(memories)
    return text, _agreed(words), highs


def speed_claim(session: Session, ratio: int = 2) -> Claim:
    """Claim 5 (efficient training): the training-step speedup of Tucker-2 with uniform ranks over the
    fastest dense step at ``ratio`` fewer MACs (:func:`paired_rounds`), judged per machine over every
    quiet record of the :data:`CLAIM_SETTING` (:func:`judged_records`), not only the newest.

    Each record's speedup is the geometric mean of its paired step ratios with a 95% interval
    (:func:`_judged`); a machine's word is the word its records of every CIFAR model share, and the row's
    word the one every machine shares (:func:`_agreed`; otherwise *inconclusive*). *No meaningful
    effect* means an interval inside ``(1/s, s)`` for the smallest speedup of interest ``s``
    (:func:`smallest_speedup`). Hardware-aware ranks are listed with their intervals, not judged; the
    ratios of parameters, optimizer state and activation memory come from each model's newest record."""

    found = load(session.root, "speedup")
    machines = judged_records(found, ratio)
    judged = [_machine(name, by_key) for name, by_key in sorted(machines.items()) if any(not hw for _, hw in by_key)]
    if not judged:
        return Claim(
            f"no quiet bench record of a Tucker-2 CIFAR network at {ratio}x fewer MACs with uniform ranks and per-step times yet",
            "inconclusive",
            BASIS,
        )
    word = _agreed([w for _, w, _ in judged])
    effect = " | ".join(text for text, _, _ in judged)
    highs = [hi for _, _, his in judged for hi in his]
    if word != "supported":
        bound = math.ceil(max(highs) * 100) / 100  # rounded up: every interval ends at or below it
        effect += f". With uniform ranks, every judged {100 * stats.CONFIDENCE:g}% interval ends at or below {bound:.2f}x"
    unjudged = unjudged_machines(found, ratio)
    if unjudged:
        effect += (
            f". Not judged: the records of {', '.join(unjudged)} (the machine's load not measured, or measured busy, or "
            "fewer than 2 paired step times)"
        )
    judged_n = sum(len(v) for by_key in machines.values() for (_, hw), v in by_key.items() if not hw)
    aware_n = sum(len(v) for by_key in machines.values() for (_, hw), v in by_key.items() if hw)
    return Claim(
        f"Tucker-2 at {ratio}x fewer MACs with uniform ranks, training step vs dense at its fastest "
        f"(the fastest dense variant each bench run timed; channels-last low-rank network, batch {CLAIM_SETTING['batch_size']}, "
        f"steps timed in turns; 95% intervals; hardware-aware ranks listed, not judged), per machine: {effect}",
        word,
        f"{judged_n} quiet uniform-rank bench record{'s' if judged_n != 1 else ''} with per-step times on {len(judged)} machine"
        f"{'s' if len(judged) != 1 else ''}, every one judged (not only the newest; {aware_n} hardware-aware listed beside); "
        f"a machine's word needs all its records to agree, the row's word all machines; smallest speedup of interest "
        f"{smallest_speedup():.2f}x; each interval covers "
        "the step-to-step noise of one measurement on one machine (methods page)",
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
