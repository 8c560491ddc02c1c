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
    "crossovers",
    "chosen_on_validation",
    "beside_text",
    "detectable_text",
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
    (one of :data:`stats.VERDICTS`), ``scale`` (what the evidence rests on) and ``detectable`` (the
    smallest difference its n could detect, in words; ``""`` where not stated)."""

    effect: str
    verdict: str
    scale: str
    detectable: str = ""

    def sentence(self) -> str:
        """``"<effect> (verdict: <verdict>; <scale>)."``: the claim in one sentence."""
        return f"{self.effect} (verdict: {self.verdict}; {self.scale})."

    def glue(self, session, key: str) -> None:
        """Glue ``<key>_effect``, ``<key>_verdict``, ``<key>_scale`` and ``<key>_detectable`` for the book's pages."""
        for part in ("effect", "verdict", "scale", "detectable"):
            session.glue(f"{key}_{part}", getattr(self, part))


def detectable_text(comparisons: Sequence[stats.Paired], unit: str = "points", digits: int = 2) -> str:
    """The smallest true difference the ``comparisons`` could detect (80% power, each at its own level
    and n, :attr:`stats.Paired.detectable`) in one sentence: ``"Smallest difference detectable at n = 3 with 80%
    power: 1.10 to 2.05 points"``;
    or why none can be stated (fewer than two seeds)."""
    found = [(c.n, c.detectable) for c in comparisons if not math.isnan(c.detectable)]
    if not found:
        return "No detectable effect can be stated yet (fewer than two paired seeds)"
    ns = sorted({n for n, _ in found})
    values = sorted(v for _, v in found)
    n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]} to {ns[-1]}"
    span = (
        f"{values[0]:.{digits}f}"
        if len(values) == 1 or f"{values[0]:.{digits}f}" == f"{values[-1]:.{digits}f}"
        else (f"{values[0]:.{digits}f} to {values[-1]:.{digits}f}")
    )
    unit = f" {unit}" if unit else ""
    return f"Smallest difference detectable at {n_text} with {100 * stats.POWER:.0f}% power: {span}{unit}"


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


combine = stats.combine


def two_way(runs: Runs, comparison: Comparison, metric: str = "final_test_top1", direction: int = 1) -> stats.Paired:
    """``comparison.treatment`` − ``comparison.reference`` in ``metric`` (a key of each record's
    ``metrics``), paired by seed over the seeds both have; ``direction``: the sign the claim
    predicts (+1: the treatment is higher, e.g. accuracy; −1: lower, e.g. training loss). The
    comparison's smallest effect of interest applies to test accuracy, the metric it was declared for."""
    if comparison.treatment is None:
        raise ValueError(f"a two-way comparison needs a treatment; this one compares {', '.join(comparison.methods)}")
    by_method = values(runs, metric)
    smallest = comparison.smallest_effect if metric == "final_test_top1" else None
    return stats.paired(
        by_method.get(comparison.reference, {}),
        by_method.get(comparison.treatment, {}),
        names=(comparison.reference, comparison.treatment),
        direction=direction,
        smallest=smallest,
    )


def paired_claim(comparison: stats.Paired, scale: str, names: dict[str, str]) -> Claim:
    """A claim resting on one paired comparison: "<treatment> − <reference>: effect"."""
    effect = (
        f"{names.get(comparison.treatment, comparison.treatment)} − {names.get(comparison.reference, comparison.reference)}: "
        f"{comparison.effect()}"
    )
    return Claim(effect, comparison.verdict, scale, detectable_text([comparison]))


def beside_text(runs: Runs, comparison: Comparison, names: Mapping[str, str], why: str) -> str:
    """A comparison that stands outside every declared family (``why``, in words), e.g. a baseline planned
    after its row's family was fixed: each method's mean final test top-1 with n, then treatment −
    reference paired by seed with its unadjusted 95% interval and word (the comparison's smallest effect of
    interest); or which method has no finished run yet."""
    found = values(runs)
    missing = [names.get(m, m) for m in (comparison.reference, comparison.treatment) if m not in found]
    if missing:
        return f"No comparison yet: {' · '.join(missing)} without finished runs ({why})."
    means = "; ".join(
        f"{names.get(m, m)} {sum(found[m].values()) / len(found[m]):.2f}% (n = {len(found[m])})"
        for m in (comparison.reference, comparison.treatment)
    )
    c = two_way(runs, comparison)
    effect = paired_claim(c, "", dict(names)).effect
    return f"Final test top-1: {means}. {effect}, {c.verdict} (unadjusted 95% interval: {why})."


def without_results(methods: Sequence[str], values: Mapping[str, Mapping[int, float]], names: Mapping[str, str]) -> str:
    """``"; without results so far: A · B"`` for the ``methods`` that have no finished run in ``values``; ``""``
    when every one has (appended to a claim's effect, so a reader sees what the verdict leaves out)."""
    missing = [names.get(m, m) for m in methods if m not in values]
    return f"; without results so far: {' · '.join(missing)}" if missing else ""


def _word(words: Sequence[str], complete: bool) -> str:
    """:func:`combine` of ``words``, capped at *inconclusive* when the claim covers methods without
    results (``complete`` false): a claim about every method is not supported, nor shown empty, by some of them."""
    word = combine(words)
    return "inconclusive" if word in ("supported", "no meaningful effect") and not complete else word


def _deciding(comparisons: Sequence[stats.Paired], beyond: Iterable[str], key: str = "reference") -> list[stats.Paired]:
    """The comparisons that decide a row: those whose opponent (``key``: the attribute naming it) the
    paper compares with, i.e. not in ``beyond``."""
    beyond = set(beyond)
    return [c for c in comparisons if getattr(c, key) not in beyond]


def _opponent_lines(comparisons: Sequence[stats.Paired], names: Mapping[str, str], beyond: Iterable[str], key: str) -> str:
    """``"vs A (word) effect; vs B (word) effect"``, the paper's opponents first, then ``"; beyond the
    paper: vs C (word) effect"`` for the book's own comparisons."""

    def line(c: stats.Paired) -> str:
        return f"vs {names.get(getattr(c, key), getattr(c, key))} ({c.verdict}) {c.effect()}"

    beyond = set(beyond)
    paper = [line(c) for c in comparisons if getattr(c, key) not in beyond]
    extra = [line(c) for c in comparisons if getattr(c, key) in beyond]
    text = "; ".join(paper) or "no paired runs of the paper's comparisons yet"
    return text + (f"; beyond the paper: {'; '.join(extra)}" if extra else "")


def beats_claim(
    values: dict[str, dict[int, float]],
    subject: str,
    opponents: Sequence[str],
    scale: str,
    names: dict[str, str],
    smallest: float | None = None,
    beyond: Sequence[str] = (),
) -> tuple[Claim, list[stats.Paired]]:
    """The claim that ``subject`` is higher than each of ``opponents`` (paired by seed, Holm's step-down
    over all ``opponents``, the planned family, with or without results): one effect and word per
    opponent with results, the paper's opponents first and those in ``beyond`` (the book's additions) on
    their own, and the word of the paper's opponents alone, which cannot be *supported* or *no meaningful
    effect* while one of them has no results (named in the effect; :func:`_word`). ``smallest``: the smallest effect of interest."""
    planned = [o for o in opponents if o != subject]
    present = [o for o in planned if o in values]
    pairs = [(values[o], values[subject], (o, subject)) for o in present] if subject in values else []
    comparisons = stats.holm(pairs, family=len(planned), smallest=smallest)
    below = [names.get(c.reference, c.reference) for c in comparisons if c.mean < 0]
    direction = (  # the direction of the estimates in words: a reader of signs alone can miss it
        f" (mean below the opponent's for {len(below)} of {len(comparisons)}: {' · '.join(below)})" if below else ""
    )
    lines = _opponent_lines(comparisons, names, beyond, "reference") if comparisons else "no paired runs yet"
    if comparisons and not [o for o in planned if o not in set(beyond)]:
        lines = lines.replace("no paired runs of the paper's comparisons yet", "none of the paper's comparisons is planned here")
    effect = lines + direction + without_results([subject, *planned], values, names)
    deciding = [o for o in planned if o not in set(beyond)]
    word = _word(
        [c.verdict for c in _deciding(comparisons, beyond)], complete=all(o in values for o in deciding) and subject in values
    )
    claim = Claim(f"{names.get(subject, subject)} − each: {effect}", word, scale, detectable_text(_deciding(comparisons, beyond)))
    return claim, comparisons


@dataclass(frozen=True)
class Ranking:
    """Several methods against one reference (e.g. the regularizers against Tucker-2): ``claim``
    (each method's paired effect and word under Holm's step-down, and the combined word), the ``comparisons``
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
    in final test top-1 (paired by seed, :func:`stats.against_reference`, Holm's step-down over the
    methods of ``comparison`` that the profile's plan trains (``planned``, e.g. :func:`plan.comparison`),
    with or without results), whether they differ at all (:func:`stats.omnibus`) and which leads beyond
    the noise (:func:`stats.leader`). Planned methods without results are named in the claim's effect,
    and its word then cannot be *supported* or *no meaningful effect* (:func:`_word`)."""
    names, accuracy = labels(runs), values(runs)
    trained = {run.method for run in planned}
    others = [m for m in comparison.methods if m != comparison.reference and m in trained]
    family = len(set(others) | set(accuracy) - {comparison.reference})
    comparisons = (
        stats.against_reference(accuracy, comparison.reference, family=family, smallest=comparison.smallest_effect)
        if comparison.reference in accuracy
        else []
    )
    any_difference, n_common = stats.omnibus(accuracy)
    lead = stats.leader(accuracy, planned=[comparison.reference, *others])
    effect = "; ".join(f"{names[c.treatment]} ({c.verdict}) {c.effect()}" for c in comparisons) or "no finished runs yet"
    deciding = _deciding(comparisons, comparison.beyond_paper, "treatment")
    claim = Claim(
        effect + without_results([comparison.reference, *others], accuracy, names),
        _word([c.verdict for c in deciding], complete=all(m in accuracy for m in others if m not in comparison.beyond_paper)),
        scale,
        detectable_text(deciding),
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
        out[net] = beats_claim(
            values(runs),
            comparison.headline,
            opponents,
            scale(runs),
            labels(runs),
            comparison.smallest_effect,
            comparison.beyond_paper,
        )
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
    smallest: float | None = None,
    beyond: Sequence[str] = ("spatial",),
) -> Claim:
    """Claim 1: ``fmt`` approximates the kernels with less relative error than each opponent at the
    same per-layer cost (``budget`` times fewer ``by``); paired over layers (effect = opponent error −
    ``fmt`` error, so positive favours ``fmt``), with its win count. ``names``: default the formats'
    labels (:attr:`LowRankConv2d.label`). The intervals follow Holm's step-down over the opponents, each
    comparison says its own word, and the claim's word is that of the opponents the paper compares with
    (not in ``beyond``: the formats the book added, shown on their own). ``smallest``: the smallest
    difference in relative error of interest."""
    names = names if names is not None else {f: format_class(f).label for f in (fmt, *opponents)}
    per = layer_values(errors, budget, by=by)
    comparisons = stats.holm([(per[fmt], per[o], (fmt, o)) for o in opponents], smallest=smallest)
    beyond = set(beyond)

    def part(c: stats.Paired) -> str:
        wins = sum(d > 0 for d in c.diffs)
        name = names.get(c.treatment, c.treatment)
        return f"vs {name} ({c.verdict}): lower in {wins} of {c.n} layers, mean {c.effect('', digits=3)}"

    paper = [part(c) for c in comparisons if c.treatment not in beyond]
    extra = [part(c) for c in comparisons if c.treatment in beyond]
    label = names.get(fmt, fmt)
    deciding = [c for c in comparisons if c.treatment not in beyond]
    return Claim(
        f"{label} at {budget:g}x fewer {COST_NAMES[by]} per layer, relative error of each other format minus its own "
        f"(positive: {label} has the lower error): "
        + "; ".join(paper)
        + (f"; beyond the paper: {'; '.join(extra)}" if extra else ""),
        combine([c.verdict for c in deciding]),
        scale,
        detectable_text(deciding, unit="", digits=3) + " (layers play the role of seeds)",
    )


def crossovers(errors: pd.DataFrame, fmt: str = "tucker2", by: str = "macs", weights: str | None = None) -> dict[str, str]:
    """Per opponent format, where ``fmt`` starts to win: ``{opponent: text}`` with the wins at every
    per-layer budget of ``errors`` (one kind of ``weights``, budgets by ``by``) and the first budget from
    which ``fmt`` has the lower error in a majority of layers at that budget and every larger one, e.g.
    ``"0 of 18 at 1.25x · 9 of 18 at 1.5x · 16 of 18 at 2x: a majority from 2x fewer MACs on"``."""
    part = errors[errors["by"] == by] if "by" in errors.columns else errors
    if weights is not None:
        part = part[part["weights"] == weights]
    counts = win_counts(part.drop(columns=[c for c in ("weights", "by") if c in part.columns]), fmt)
    out = {}
    for opponent, rows in counts.groupby("opponent", sort=False):
        rows = rows.sort_values("budget")
        majority = [r.layers > 0 and 2 * r.wins > r.layers for r in rows.itertuples()]
        steps = " · ".join(f"{r.wins} of {r.layers} at {r.budget:g}x" for r in rows.itertuples())
        start = next((i for i in range(len(majority)) if all(majority[i:])), None)
        if start is None:
            tail = f"no budget from which {format_class(fmt).label} wins most layers"
        elif start == 0:
            tail = "a majority at every budget"
        else:
            tail = f"a majority from {rows['budget'].iloc[start]:g}x fewer {COST_NAMES[by]} on"
        out[opponent] = f"{steps}: {tail}"
    return out


def _majorities(errors: pd.DataFrame, fmt: str, by: str, weights: str) -> pd.DataFrame:
    """:func:`win_counts` of ``fmt`` on one kind of ``weights`` with budgets by ``by``, opponents in order
    of first occurrence and budgets ascending, with ``majority``: whether ``fmt`` has the lower error in
    more than half of the layers compared."""
    part = errors[errors["weights"] == weights]
    if "by" in part.columns:
        part = part[part["by"] == by]
    counts = win_counts(part.drop(columns=[c for c in ("weights", "by") if c in part.columns]), fmt)
    first = {o: i for i, o in enumerate(dict.fromkeys(counts["opponent"]))}
    return (
        counts.assign(
            majority=(counts["layers"] > 0) & (2 * counts["wins"] > counts["layers"]), order=counts["opponent"].map(first)
        )
        .sort_values(["order", "budget"], kind="stable")
        .drop(columns="order")
    )


def _paper_first(opponents: Iterable[str], beyond: Iterable[str]) -> list[str]:
    opponents, beyond = list(opponents), set(beyond)
    return [o for o in opponents if o not in beyond] + [o for o in opponents if o in beyond]


def win_grid(errors: pd.DataFrame, fmt: str = "tucker2", by: str = "macs", beyond: Iterable[str] = ()) -> pd.DataFrame:
    """The win counts of ``fmt`` at every per-layer budget of ``errors`` (budgets by ``by``) in one small
    table: a row per budget (``"2x"``), then a row ``"most layers from"`` (the first budget from which
    ``fmt`` wins most layers at it and every larger one, or ``"never"``, as in :func:`crossovers`); a
    column per opponent (the paper's first; those in ``beyond`` marked "beyond the paper") and kind of
    weights (the trained network, then the control: the same network at its initialization; ``errors``
    holds both in column ``weights``), each cell ``"<wins>/<layers compared>"``."""
    counts = {w: _majorities(errors, fmt, by, w) for w in ("trained", "initialization")}
    columns: dict[str, list[str]] = {}
    budgets = sorted(set(counts["trained"]["budget"]))
    for opponent in _paper_first(dict.fromkeys(counts["trained"]["opponent"]), beyond):
        label = format_class(opponent).label + (" (beyond the paper)" if opponent in set(beyond) else "")
        for weights, name in (("trained", "trained"), ("initialization", "control")):
            part = counts[weights][counts[weights]["opponent"] == opponent]
            cells = {r.budget: f"{r.wins}/{r.layers}" for r in part.itertuples()}
            majority = part["majority"].tolist()
            start = next((i for i in range(len(majority)) if all(majority[i:])), None)
            first = "never" if start is None else f"{part['budget'].iloc[start]:g}x"
            columns[f"vs {label}: {name}"] = [cells.get(b, "") for b in budgets] + [first]
    return pd.DataFrame({"per-layer budget": [f"{b:g}x" for b in budgets] + ["most layers from"], **columns})


def structure_budgets(errors: pd.DataFrame, fmt: str = "tucker2", by: str = "macs") -> dict[str, list[float]]:
    """Per opponent, the per-layer budgets at which ``fmt`` has the lower error in most layers of the
    trained network but not of the control (the same network at its initialization, column ``weights``
    ``"trained"`` and ``"initialization"``): the budgets where its advantage comes from structure in the
    trained kernels, not from how the format spends the budget (a random kernel has no low-rank structure)."""
    trained = _majorities(errors, fmt, by, "trained")
    control = _majorities(errors, fmt, by, "initialization").set_index(["opponent", "budget"])["majority"]
    out: dict[str, list[float]] = {}
    for opponent, part in trained.groupby("opponent", sort=False):
        out[opponent] = [r.budget for r in part.itertuples() if r.majority and not control.get((opponent, r.budget), False)]
    return out


def structure_text(errors: pd.DataFrame, fmt: str = "tucker2", by: str = "macs", beyond: Iterable[str] = ()) -> str:
    """:func:`structure_budgets` in words, the paper's opponents first: e.g. "Against matrix rank, channel
    reshape: only at 2x fewer MACs does Tucker-2 (tensor rank) win most layers of the trained network but
    not of the control, so only there can its advantage not be put down to how the format spends the
    budget. ..."."""
    found = structure_budgets(errors, fmt, by)
    name = format_class(fmt).label
    parts = []
    for opponent in _paper_first(found, beyond):
        where = f"Against {format_class(opponent).label}" + (" (beyond the paper)" if opponent in set(beyond) else "")
        budgets = found[opponent]
        if budgets:
            listed = ", ".join(f"{b:g}x" for b in budgets)
            parts.append(
                f"{where}: only at {listed} fewer {COST_NAMES[by]} does {name} win most layers of the trained network but "
                f"not of the control, so only there can its advantage not be put down to how the format spends the budget."
            )
        else:
            parts.append(f"{where}: at no budget does {name} win most layers of the trained network but not of the control.")
    return " ".join(parts) or "No budget to compare."


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


def chosen_on_validation(
    runs: Runs,
    candidates: Sequence[str],
    names: Mapping[str, str],
    against: tuple[str, Runs] | None = None,
    smallest: float | None = None,
    direct: Sequence[stats.Paired] = (),
) -> str:
    """Which of ``candidates`` (methods, e.g. one regularizer at several strengths; the first is the rule's
    setting) the validation split chooses, in words: the highest mean final validation top-1 over the seeds
    every candidate has, with the chosen one's test top-1 over the same seeds (reported, never used to
    choose), and whether it is the smallest or largest strength tried (:func:`_edge`: the best may lie beyond).
    ``direct``: the check's comparisons of the other candidates with the first (e.g. Holm's), whose line for
    the chosen one is quoted. ``against``: a method and runs of it from the same profile (e.g. no
    regularizer): the chosen candidate and the first are each set against it over those seeds, with
    unadjusted 95% intervals and words (``smallest``: the smallest effect of interest); the chosen one's
    interval ignores that it was chosen, which the text says. Says instead why no choice is made: a profile
    without a validation split, or candidates without runs."""
    val, test = values(runs, "final_val_top1"), values(runs, "final_test_top1")
    missing = [names.get(m, m) for m in candidates if m not in test]
    if missing:
        return f"No choice yet: {' · '.join(missing)} without finished runs."
    if any(m not in val for m in candidates):
        return "No choice: these runs have no validation split, and the test set never chooses."
    seeds = sorted(set.intersection(*(set(val[m]) for m in candidates)))
    if not seeds:
        return "No choice yet: no seed has a run of every candidate."
    mean_val = {m: sum(val[m][s] for s in seeds) / len(seeds) for m in candidates}
    best = max(candidates, key=lambda m: mean_val[m])
    others = ", ".join(f"{names.get(m, m)} {mean_val[m]:.2f}%" for m in candidates if m != best)
    chosen_test = sum(test[best][s] for s in seeds) / len(seeds)
    which = f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}"
    text = (
        f"Over the {len(seeds)} {'seeds' if len(seeds) != 1 else 'seed'} every candidate has ({which}), the mean final "
        f"validation top-1 chooses {names.get(best, best)}: {mean_val[best]:.2f}% (against {others}); its test top-1 "
        f"over the same seeds is {chosen_test:.2f}%.{_edge(best, candidates)}"
    )
    quoted = next((c for c in direct if c.treatment == best), None)
    if quoted is not None:
        text += f" Against {names.get(candidates[0], candidates[0])} directly: {quoted.effect()}, {quoted.verdict}."
    if against is None:
        return text
    method, base_runs = against
    base = {s: v for s, v in values(base_runs).get(method, {}).items() if s in seeds}
    if not base:
        return f"{text} {names.get(method, method)} has no run at these seeds to set it against."
    parts = []
    for m in dict.fromkeys([best, candidates[0]]):  # the chosen one, then the rule's setting unless it is the one chosen
        c = stats.paired(base, {s: test[m][s] for s in seeds}, names=(method, m), smallest=smallest)
        parts.append(f"{names.get(m, m)}{' (chosen)' if m == best else ''} {c.effect()}, {c.verdict}")
    caveat = (
        " The chosen strength's interval does not allow for the choice among these candidates on the same seeds, so it flatters."
        if best != candidates[0]
        else ""
    )
    return f"{text} Against {names.get(method, method)} on {which} (test top-1, unadjusted): {'; '.join(parts)}.{caveat}"


def _edge(chosen: str, candidates: Sequence[str]) -> str:
    """``" It is the largest strength tried, so the best may lie beyond it."``, the smallest likewise, or
    ``""`` (also for methods without a known strength)."""
    known = methods()
    scale = {m: known[m].reg_weight_scale for m in candidates if m in known}
    if len(scale) != len(candidates) or len(set(scale.values())) < 2:
        return ""
    if scale[chosen] == max(scale.values()):
        return " It is the largest strength tried, so the best may lie beyond it."
    if scale[chosen] == min(scale.values()):
        return " It is the smallest strength tried, so the best may lie below it."
    return ""
