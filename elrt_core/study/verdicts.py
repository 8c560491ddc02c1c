"""Verdicts computed from run records with :mod:`.stats` (never typed): effects, intervals, words.

Each chapter's claim gets a :class:`Claim`: the effect in words with its interval and n, the
verdict word, and the scale of the evidence (profile, epochs, data) — the cells of the
introduction's table, glued from the chapter that computes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ..analysis import COST_NAMES
from ..lowrank.convert import format_class
from ..profiles import Comparison, methods
from ..records import Record
from . import stats
from .plan import PlannedRun

__all__ = [
    "Claim",
    "values",
    "labels",
    "combine",
    "two_way",
    "paired_claim",
    "without_results",
    "beats_claim",
    "network_claims",
    "Ranking",
    "ranking",
    "networks_text",
    "format_claim",
    "layer_values",
    "win_counts",
    "win_table",
    "COMPARISON_KEYS",
]

Runs = Sequence[tuple[PlannedRun, Record]]

COMPARISON_KEYS = ("weights", "by", "budget")
"""Columns of an approximation table that name one comparison of formats (those present are used)."""


@dataclass(frozen=True)
class Claim:
    """What the study finds for one claim: ``effect`` (numbers with interval and n), ``verdict``
    (one of :data:`stats.VERDICTS`) and ``scale`` (what the evidence rests on)."""

    effect: str
    verdict: str
    scale: str

    def sentence(self) -> str:
        """``"<effect> (verdict: <verdict>; <scale>)."``: the claim in one sentence."""
        return f"{self.effect} (verdict: {self.verdict}; {self.scale})."

    def glue(self, session, key: str) -> None:
        """Glue ``<key>_effect``, ``<key>_verdict`` and ``<key>_scale`` for the book's pages."""
        for part in ("effect", "verdict", "scale"):
            session.glue(f"{key}_{part}", getattr(self, part))


def values(runs: Runs, metric: str = "final_test_top1") -> dict[str, dict[int, float]]:
    """``{method key: {seed: metric}}`` of finished runs (``metric`` from each record's ``metrics``)."""
    out: dict[str, dict[int, float]] = {}
    for run, rec in runs:
        value = rec.metrics.get(metric)
        if value is not None:
            out.setdefault(run.method, {})[run.config.seed] = float(value)
    return out


def labels(runs: Runs) -> dict[str, str]:
    """``{method key: readable label}``: the methods of ``runs`` in the order they come, then every
    other method of the study (a verdict names the methods it compares before they have runs)."""
    found = {run.method: run.label for run, _ in runs}
    return found | {key: m.label for key, m in methods().items() if key not in found}


def combine(words: Sequence[str]) -> str:
    """One word for a claim made of several comparisons: *supported* if all are, *contradicted* if
    any is, else *inconclusive*."""
    if words and all(w == "supported" for w in words):
        return "supported"
    return "contradicted" if "contradicted" in words else "inconclusive"


def two_way(runs: Runs, comparison: Comparison, metric: str = "final_test_top1", direction: int = 1) -> stats.Paired:
    """``comparison.treatment`` − ``comparison.reference`` in ``metric`` (a key of each record's
    ``metrics``), paired by seed over the seeds both have; ``direction``: the sign the claim
    predicts (+1: the treatment is higher, e.g. accuracy; −1: lower, e.g. training loss)."""
    if comparison.treatment is None:
        raise ValueError(f"a two-way comparison needs a treatment; this one compares {', '.join(comparison.methods)}")
    by_method = values(runs, metric)
    return stats.paired(
        by_method.get(comparison.reference, {}),
        by_method.get(comparison.treatment, {}),
        names=(comparison.reference, comparison.treatment),
        direction=direction,
    )


def paired_claim(comparison: stats.Paired, scale: str, names: dict[str, str]) -> Claim:
    """A claim resting on one paired comparison: "<treatment> − <reference>: effect"."""
    effect = (
        f"{names.get(comparison.treatment, comparison.treatment)} − {names.get(comparison.reference, comparison.reference)}: "
        f"{comparison.effect()}"
    )
    return Claim(effect, comparison.verdict, scale)


def without_results(methods: Sequence[str], values: Mapping[str, Mapping[int, float]], names: Mapping[str, str]) -> str:
    """``"; without results so far: A · B"`` for the ``methods`` that have no finished run in ``values``; ``""``
    when every one has (appended to a claim's effect, so a reader sees what the verdict leaves out)."""
    missing = [names.get(m, m) for m in methods if m not in values]
    return f"; without results so far: {' · '.join(missing)}" if missing else ""


def _word(words: Sequence[str], complete: bool) -> str:
    """:func:`combine` of ``words``, capped at *inconclusive* when the claim covers methods without
    results (``complete`` false): a claim about every method is not supported by some of them."""
    word = combine(words)
    return "inconclusive" if word == "supported" and not complete else word


def beats_claim(
    values: dict[str, dict[int, float]], subject: str, opponents: Sequence[str], scale: str, names: dict[str, str]
) -> tuple[Claim, list[stats.Paired]]:
    """The claim that ``subject`` is higher than each of ``opponents`` (paired by seed,
    Bonferroni-corrected over all ``opponents``, the planned family, with or without results): one
    effect per opponent with results and the combined word, which is at most *inconclusive* while an
    opponent has no results (named in the effect)."""
    planned = [o for o in opponents if o != subject]
    present = [o for o in planned if o in values]
    level = stats.bonferroni(len(planned))
    comparisons = [
        stats.paired(values[o], values[subject], names=(o, subject), confidence=level) for o in present if subject in values
    ]
    parts = [f"vs {names.get(c.reference, c.reference)} {c.effect()}" for c in comparisons]
    below = [names.get(c.reference, c.reference) for c in comparisons if c.mean < 0]
    direction = (  # the direction of the estimates in words: a reader of signs alone can miss it
        f" (mean below the opponent's for {len(below)} of {len(comparisons)}: {' · '.join(below)})" if below else ""
    )
    effect = ("; ".join(parts) or "no paired runs yet") + direction + without_results([subject, *planned], values, names)
    word = _word([c.verdict for c in comparisons], complete=len(present) == len(planned))
    return Claim(f"{names.get(subject, subject)} − each: {effect}", word, scale), comparisons


@dataclass(frozen=True)
class Ranking:
    """Several methods against one reference (e.g. the regularizers against Tucker-2): ``claim``
    (each method's paired effect, Bonferroni-corrected, and the combined word), the ``comparisons``
    behind it, the omnibus p-value ``any_difference`` over the ``n_common`` seeds every method has,
    and ``leader_sentence``: the sentence that names a best method only outside the noise."""

    claim: Claim
    comparisons: list[stats.Paired]
    any_difference: float
    n_common: int
    leader_sentence: str
    n_methods: int

    @property
    def difference_text(self) -> str:
        """ "Do the settings differ at all?" answered in words: the omnibus p over the common seeds, or
        why there is none."""
        seeds = f"{self.n_common} seed{'s' if self.n_common != 1 else ''}"
        if self.n_methods < 2:
            return "Do the settings differ at all? Not testable yet: fewer than two settings have finished runs."
        if math.isnan(self.any_difference):
            return (
                f"Do the settings differ at all? Not testable yet: only {seeds} every setting has (a within-seed test needs 2)."
            )
        return f"Do the settings differ at all? Within-seed permutation test over the {seeds} every setting has: p = {self.any_difference:.3g}."


def ranking(runs: Runs, comparison: Comparison, scale: str, planned: Sequence[PlannedRun]) -> Ranking:
    """Each other method of ``runs`` (pass the runs of one comparison) against ``comparison.reference``
    in final test top-1 (paired by seed, :func:`stats.against_reference`, Bonferroni-corrected over the
    methods of ``comparison`` that the profile's plan trains (``planned``, e.g. :func:`plan.comparison`),
    with or without results), whether they differ at all (:func:`stats.omnibus`) and which leads beyond
    the noise (:func:`stats.leader`). Planned methods without results are named in the claim's effect,
    and its word is then at most *inconclusive*."""
    names, accuracy = labels(runs), values(runs)
    trained = {run.method for run in planned}
    others = [m for m in comparison.methods if m != comparison.reference and m in trained]
    family = len(set(others) | set(accuracy) - {comparison.reference})
    comparisons = (
        stats.against_reference(accuracy, comparison.reference, family=family) if comparison.reference in accuracy else []
    )
    any_difference, n_common = stats.omnibus(accuracy)
    lead = stats.leader(accuracy, planned=[comparison.reference, *others])
    effect = "; ".join(f"{names[c.treatment]} {c.effect()}" for c in comparisons) or "no finished runs yet"
    claim = Claim(
        effect + without_results([comparison.reference, *others], accuracy, names),
        _word([c.verdict for c in comparisons], complete=all(m in accuracy for m in others)),
        scale,
    )
    sentence = (
        f"{names[lead]} is ahead of every other setting beyond the noise."
        if lead
        else "No setting is ahead of all others beyond the seed-to-seed noise, so none is named best."
    )
    return Ranking(claim, comparisons, any_difference, n_common, sentence, len(accuracy))


def network_claims(
    networks: Mapping[tuple[str, float], Runs],
    comparison: Comparison,
    scale: Callable[[Runs], str],
    planned: Mapping[tuple[str, float], Sequence[PlannedRun]],
) -> dict[tuple[str, float], tuple[Claim, list[stats.Paired]]]:
    """:func:`beats_claim` of ``comparison.headline`` against each other method of ``comparison`` that
    the plan trains at the network (``planned``: ``(model, flops_ratio)`` → its planned runs), at every
    network of ``networks`` (→ its finished runs), with ``scale(runs)`` as each claim's scale."""
    out = {}
    for net, runs in networks.items():
        trained = {run.method for run in planned[net]}
        opponents = [m for m in comparison.methods if m != comparison.headline and m in trained]
        out[net] = beats_claim(values(runs), comparison.headline, opponents, scale(runs), labels(runs))
    return out


def networks_text(claims: Mapping[tuple[str, float], tuple[Claim, list[stats.Paired]]]) -> str:
    """One paragraph per network: "**<model> at <r>x fewer FLOPs:** <verdict>. <effect>." (Markdown)."""
    return "\n\n".join(
        f"**{model} at {ratio:g}x fewer FLOPs:** {c.verdict}. {c.effect}." for (model, ratio), (c, _) in claims.items()
    )


def layer_values(errors: pd.DataFrame, budget: float, value: str = "rel_error", by: str = "macs") -> dict[str, dict[int, float]]:
    """``{format: {layer index: value}}`` of one budget of an approximation table with columns
    ``format``, ``layer`` (names), ``budget``, ``value`` and, where present, ``by`` (the budget's cost,
    ``"macs"`` or ``"params"``): layers play the role of seeds, so :func:`stats.paired` compares two
    formats layer by layer."""
    if "weights" in errors.columns and errors["weights"].nunique() > 1:
        raise ValueError(f"pass one kind of weights at a time, got {sorted(errors['weights'].unique())}")
    part = errors[(errors["budget"] == budget) & ((errors["by"] == by) if "by" in errors.columns else True)]
    order = {name: i for i, name in enumerate(dict.fromkeys(part["layer"]))}
    out: dict[str, dict[int, float]] = {}
    for row in part.itertuples():
        out.setdefault(row.format, {})[order[row.layer]] = float(getattr(row, value))
    return out


def format_claim(
    errors: pd.DataFrame,
    budget: float,
    scale: str,
    names: dict[str, str] | None = None,
    fmt: str = "tucker2",
    opponents: Sequence[str] = ("matrix", "spatial"),
    by: str = "macs",
) -> Claim:
    """Claim 1: ``fmt`` approximates the kernels with less relative error than each opponent at the
    same per-layer cost (``budget`` times fewer ``by``); paired over layers (effect = opponent error −
    ``fmt`` error, so positive favours ``fmt``), with its win count. ``names``: default the formats'
    labels (:attr:`LowRankConv2d.label`). The intervals are Bonferroni-corrected over the opponents, and
    each comparison says its own word: the claim's word is *contradicted* if any one is."""
    names = names if names is not None else {f: format_class(f).label for f in (fmt, *opponents)}
    per = layer_values(errors, budget, by=by)
    level = stats.bonferroni(len(opponents))
    comparisons = [stats.paired(per[fmt], per[o], names=(fmt, o), direction=1, confidence=level) for o in opponents]
    parts = []
    for c in comparisons:
        wins = sum(d > 0 for d in c.diffs)
        parts.append(
            f"vs {names.get(c.treatment, c.treatment)} ({c.verdict}): lower in {wins} of {c.n} layers, mean {c.effect('', digits=3)}"
        )
    label = names.get(fmt, fmt)
    return Claim(
        f"{label} at {budget:g}x fewer {COST_NAMES[by]} per layer, relative error of each other format minus its own "
        f"(positive: {label} has the lower error): " + "; ".join(parts),
        combine([c.verdict for c in comparisons]),
        scale,
    )


def win_counts(errors: pd.DataFrame, fmt: str = "tucker2", against: Iterable[str] | None = None) -> pd.DataFrame:
    """How often ``fmt`` has a lower relative error than each opponent format, per comparison.

    ``errors``: rows of :func:`elrt_core.analysis.layer_errors` (``layer, format, rel_error, budget``,
    and ``by`` and ``weights`` where present); ``against``: default every other format in ``errors``, in order of first occurrence.
    One row per comparison (:data:`COMPARISON_KEYS` present, in order of first occurrence) and opponent, with ``wins``, ``losses``
    and ``ties`` (equal errors) of ``fmt`` and ``layers``, the layers where both formats have a row (0
    where none has). Each (comparison, layer, format) must occur once.
    """
    keys = [k for k in COMPARISON_KEYS if k in errors.columns]
    if "budget" not in keys:
        raise ValueError(f"an approximation table needs a 'budget' column; it has {list(errors.columns)}")
    table = errors.set_index([*keys, "layer", "format"])["rel_error"].unstack("format")
    opponents = [f for f in dict.fromkeys(errors["format"]) if f != fmt] if against is None else list(against)
    firsts = errors[keys].drop_duplicates()  # comparisons in the order they first occur
    comparisons = pd.MultiIndex.from_frame(firsts) if len(keys) > 1 else pd.Index(firsts[keys[0]], name=keys[0])
    frames = []
    for opponent in opponents:
        both = table[[fmt, opponent]].dropna()
        ours, theirs = both[fmt], both[opponent]
        outcome = pd.DataFrame({"wins": ours < theirs, "losses": ours > theirs, "ties": ours == theirs})
        counts = outcome.groupby(level=keys).sum().reindex(comparisons, fill_value=0).astype(int)
        frames.append(counts.assign(layers=counts.sum(axis=1), opponent=opponent).reset_index())
    columns = [*keys, "opponent", "wins", "losses", "ties", "layers"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def win_table(errors: pd.DataFrame, fmt: str = "tucker2", budgets: Iterable[float] | None = None) -> pd.DataFrame:
    """:func:`win_counts` of ``fmt`` for reading: one row per kind of weights and per-layer budget
    (``"2× fewer MACs"``; only ``budgets``, default all), one column per opponent holding
    ``"<wins> of <layers compared>"`` (ties named where there are any); headers use the formats' labels."""
    part = errors if budgets is None else errors[errors["budget"].isin(list(budgets))]
    counts = win_counts(part, fmt)
    label = {f: format_class(f).label for f in {fmt, *counts["opponent"]}}
    budget = (
        [f"{r.budget:g}× fewer {COST_NAMES[r.by]}" for r in counts.itertuples()]
        if "by" in counts.columns
        else [f"{b:g}×" for b in counts["budget"]]
    )
    text = [f"{r.wins} of {r.layers}" + (f" ({r.ties} tied)" if r.ties else "") for r in counts.itertuples()]
    header = [f"{label[fmt]} lower than {label[o]}" for o in counts["opponent"]]
    rows = [k for k in ("weights",) if k in counts.columns] + ["per-layer budget"]
    wide = counts.assign(**{"per-layer budget": budget, "text": text, "header": header})
    table = wide.pivot(index=rows, columns="header", values="text")
    order = wide[rows].drop_duplicates()
    table = table.reindex(pd.MultiIndex.from_frame(order) if len(rows) > 1 else order[rows[0]])
    return table[list(dict.fromkeys(header))].reset_index().rename_axis(columns=None)
