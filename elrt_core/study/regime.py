"""The regime a verdict holds in: how far the networks trained, and how each effect moves with training.

Every verdict of the book is made at one training length (a profile: its epochs and images). Two
things say whether it would hold at another:

* :func:`underfit`: diagnostics computed from the runs' histories: the final training cross-entropy
  of each method, its training and test top-1, how many runs are still at their best validation
  accuracy in their last epoch, and the rank correlation across methods between final training loss
  and test accuracy. When the test ranking is the training-loss ranking and the runs are still
  improving, a comparison measures how fast each method fits in the time given, not where it ends.
* :func:`trend`: the effects of :func:`elrt_core.profiles.regime` (treatment − reference, paired by
  seed) at each profile of the regime axis, against the optimizer steps a run of that profile takes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from scipy import stats as scipy_stats

from ..config import SPLIT_SIZES
from ..profiles import Profile, load, methods, regime, same_data
from ..records import Record, lookup
from . import plan, stats
from .display import decimals, decisive
from .plan import PlannedRun

__all__ = [
    "steps",
    "Diagnostics",
    "underfit",
    "trend",
    "trend_sentence",
    "stability",
    "movement",
    "effect_label",
    "longer",
    "longer_text",
    "orthogonality",
    "orthogonality_text",
    "axis_text",
    "full_training_text",
    "untested_text",
    "trained",
    "chapter_note",
    "BASIS",
    "basis",
]

BASIS = "runs of the regime profiles (profiles.yaml, regime), each point with its profile and n"
"""What a figure or table across the regime axis rests on, for its caption (:func:`basis` adds the profiles)."""

Runs = Sequence[tuple[PlannedRun, Record]]

ANNEALING = {"onecycle", "cosine"}
"""Schedules that end with the learning rate near zero (:mod:`elrt_core.train`): the last epoch is then
usually the best whether or not the network has converged."""


def steps(profile: Profile) -> int:
    """Optimizer steps of one run of ``profile``: ``floor(training images / batch) × epochs`` (the last
    partial batch of an epoch is dropped, as in training)."""
    t = profile.base_config()
    images = t.subset if t.subset is not None else SPLIT_SIZES[t.dataset][0] - t.val_split
    return images // t.batch_size * t.epochs


def basis() -> str:
    """:data:`BASIS` with the profiles and the network of the regime axis."""
    axis = regime()
    return f"{BASIS}: {', '.join(axis.profiles)} ({axis.model} at {axis.flops_ratio:g}x fewer FLOPs)"


def _data(profile: Profile) -> str:
    """``"45,000 training images"`` or ``"a 10,000-image training subset"``: what one epoch of ``profile`` sees."""
    t = profile.base_config()
    return f"a {t.subset:,}-image training subset" if t.subset else f"{SPLIT_SIZES[t.dataset][0] - t.val_split:,} training images"


def _setting(profile: Profile, key: str) -> str:
    """One training setting of ``profile`` in words (``"a 10,000-image training subset"``, ``"no validation
    split"``, ``"the cosine schedule"``, ``"weight decay 0.0001"``); other keys as ``"key value"``."""
    t = profile.base_config()
    words = {
        "subset": lambda: _data(profile),
        "val_split": lambda: f"{t.val_split:,} images held out for validation" if t.val_split else "no validation split",
        "schedule": lambda: f"the {t.schedule} schedule",
        "weight_decay": lambda: f"weight decay {t.weight_decay:g}",
        "lr": lambda: f"learning rate {t.lr:g}",
        "batch_size": lambda: f"batches of {t.batch_size}",
    }
    return words[key]() if key in words else f"{key} {getattr(t, key, profile.train.get(key))}"


def _differences(profile: Profile, against: Profile) -> list[str]:
    """The training settings of ``profile`` other than ``epochs`` that differ from ``against``'s, in words."""
    a, b = dict(profile.train), dict(against.train)
    return [_setting(profile, k) for k in sorted(set(a) | set(b)) if k != "epochs" and a.get(k) != b.get(k)]


def _same_data() -> list[list[str]]:
    """The profiles of the regime axis grouped by every training setting but ``epochs``
    (:func:`elrt_core.profiles.same_data`; axis order)."""
    groups: list[list[str]] = []
    for name in regime().profiles:
        group = next((g for g in groups if g[0] in same_data(name)), None)
        if group is None:
            groups.append([name])
        else:
            group.append(name)
    return groups


def _series(names: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def axis_text() -> str:
    """The profiles of the regime axis in words, with what separates them besides training length: e.g.
    ``"cpu-quick (1,170 steps: 15 epochs of a 10,000-image training subset), ... ; cpu-full and
    cpu-full-30 differ only in epochs; cpu-quick also differs: a 10,000-image training subset and no
    validation split, so a change from it mixes those settings with training length"``. Computed from
    each profile's training settings."""
    axis = [load(name) for name in regime().profiles]
    described = ", ".join(f"{p.name} ({steps(p):,} steps: {p.base_config().epochs} epochs of {_data(p)})" for p in axis)
    groups = _same_data()
    largest = max(groups, key=len)
    parts = [described]
    if len(largest) > 1:
        parts.append(f"{_series(largest)} differ only in epochs")
    for names in groups:
        if names is largest:
            continue
        differs = " and ".join(_differences(load(names[0]), load(largest[0])))
        parts.append(
            f"{_series(names)} also differ{'s' if len(names) == 1 else ''}: {differs}, so a change from "
            f"{'it' if len(names) == 1 else 'them'} mixes those settings with training length"
        )
    return "; ".join(parts)


def _longest(names: Sequence[str]) -> Profile:
    """The profile among ``names`` whose runs take the most optimizer steps."""
    return max((load(name) for name in names), key=steps)


def untested_text(trained: Sequence[str]) -> str:
    """What training length no run here has reached, from ``trained`` (the profiles with paired runs,
    :func:`trained`): ``"any schedule longer than 30 epochs (cpu-full-30, the longest profile with runs)"``."""
    if not trained:
        return "any training schedule (no profile of the regime axis has paired runs yet)"
    longest = _longest(trained)
    return f"any schedule longer than {longest.base_config().epochs} epochs ({longest.name}, the longest profile with runs)"


def full_training_text(trained: Sequence[str], reference: str = "paper") -> str:
    """How far the longest trained profile of the regime axis is from full training: the optimizer steps
    of the ``reference`` profile (the paper-scale schedule) against the longest of ``trained`` (the
    profiles with paired runs, :func:`trained`), as a ratio, and the settings besides epochs in which the
    two differ; without a trained profile, the reference's steps alone."""
    full = load(reference)
    if not trained:
        return (
            f"The {reference} profile ({full.base_config().epochs} epochs of {_data(full)}, a usual published CIFAR-10 "
            f"length) takes {steps(full):,} optimizer steps; no profile of the regime axis has paired runs yet."
        )
    longest = _longest(trained)
    differs = _differences(full, longest)
    return (
        f"The {reference} profile ({full.base_config().epochs} epochs of {_data(full)}, a usual published CIFAR-10 "
        f"length) takes {steps(full):,} optimizer steps, {steps(full) / steps(longest):.1f} times the longest profile "
        f"trained here ({longest.name}, {steps(longest):,})"
        + (f"; it also differs from {longest.name} in {' and '.join(differs)}, so it tests more than length." if differs else ".")
    )


def effect_label(treatment: str, reference: str) -> str:
    """``"Tucker-2 + SO (U2) − Tucker-2"``: an effect named by its methods' labels."""
    labels = methods()
    return f"{labels[treatment].label} − {labels[reference].label}"


@dataclass(frozen=True)
class Diagnostics:
    """How far the runs of one profile trained. ``table``: one row per method (``label``, ``n``,
    ``train_loss`` (final training cross-entropy, mean over seeds), ``train_top1`` and ``test_top1``
    (last epoch, means)); ``best_last``: runs whose best validation top-1 is in their last epoch, of
    ``with_val`` runs with a validation split; ``spearman``: the rank correlation across methods of
    mean final training loss and mean test top-1 (NaN below three methods); ``anneals``: every run's
    schedule takes the learning rate to about zero at its end (one-cycle, cosine), where a best last epoch
    is expected whether or not the network has converged."""

    table: pd.DataFrame
    best_last: int
    with_val: int
    spearman: float
    epochs: int
    anneals: bool = False

    @property
    def runs(self) -> int:
        return int(self.table["n"].sum()) if len(self.table) else 0

    def text(self) -> str:
        """The diagnostics in words, with the conclusion they support (or that they do not)."""
        t = self.table
        if not len(t):
            return "No finished runs to diagnose yet."
        if len(t) == 1:
            one = t.iloc[0]
            parts = [
                f"After {self.epochs} epochs the final training cross-entropy of {one.label} is {one.train_loss:.3f} (n = {one.n}), "
                f"its training top-1 {one.train_top1:.2f}% (measured on augmented batches) and its test top-1 {one.test_top1:.2f}%."
            ]
        else:
            losses = f"{t['train_loss'].min():.2f} to {t['train_loss'].max():.2f}"
            below = int((t["test_top1"] < t["train_top1"]).sum())
            parts = [
                f"After {self.epochs} epochs the final training cross-entropy of the {len(t)} methods ranges from {losses}, "
                f"and test top-1 is below training top-1 (measured on augmented batches) for {below} of {len(t)}."
            ]
        if self.with_val:
            expected = (
                " (expected under a schedule that anneals the learning rate to about zero: alone it says little)"
                if self.anneals
                else ""
            )
            parts.append(
                f"{self.best_last} of {self.with_val} runs reach their best validation top-1 in their last epoch{expected}."
            )
        if not math.isnan(self.spearman):
            parts.append(
                f"Across the methods, the rank correlation of final training loss and test top-1 is "
                f"Spearman ρ = {self.spearman:.2f}."
            )
        still_fitting = self.with_val and 2 * self.best_last > self.with_val and not self.anneals
        follows_loss = not math.isnan(self.spearman) and self.spearman <= -0.8
        if follows_loss:
            parts.append(
                ("The networks are still fitting their training data, and at" if still_fitting else "At")
                + f" {self.epochs} epochs the test ranking follows the training-loss ranking: a comparison here may measure "
                "how fast each method fits rather than where it would end; whether the ranking holds after full training "
                "is not tested here."
            )
        return " ".join(parts)


def underfit(runs: Runs) -> Diagnostics:
    """:class:`Diagnostics` of the finished ``runs`` of one profile (all of its methods, dense included)."""
    rows, best_last, with_val, epochs, schedules = [], 0, 0, 0, set()
    for run, rec in runs:
        last = rec.history[-1]
        epochs = max(epochs, run.config.epochs)
        schedules.add(getattr(run.config, "schedule", None))
        rows.append({"method": run.method, "label": run.label, **{k: last[k] for k in ("train_loss", "train_top1", "test_top1")}})
        if rec.metrics.get("best_val_epoch") is not None:
            with_val += 1
            best_last += int(rec.metrics["best_val_epoch"] == len(rec.history))
    frame = pd.DataFrame(rows, columns=["method", "label", "train_loss", "train_top1", "test_top1"])
    table = (
        frame.groupby(["method", "label"], sort=False)
        .agg(
            n=("test_top1", "size"),
            train_loss=("train_loss", "mean"),
            train_top1=("train_top1", "mean"),
            test_top1=("test_top1", "mean"),
        )
        .reset_index()
    )
    rho = float(scipy_stats.spearmanr(table["train_loss"], table["test_top1"]).statistic) if len(table) >= 3 else math.nan
    return Diagnostics(table, best_last, with_val, rho, epochs, anneals=bool(schedules) and schedules <= ANNEALING)


def longer(session) -> pd.DataFrame:
    """The same method trained longer on the same data: for each group of regime profiles that differ only
    in epochs, each method with finished runs on the regime network at two or more of them, one row per
    (method, profile) with ``method``, ``label``, ``profile``, ``epochs``, ``n``, ``train_loss`` (final
    training cross-entropy) and ``test_top1`` (final), means over seeds (:func:`underfit`'s table)."""
    axis, rows = regime(), []
    for group in (g for g in _same_data() if len(g) > 1):
        per_profile = {}
        for name in group:
            profile = load(name)
            network = [
                r for r in plan.plan(profile) if r.config.model == axis.model and r.config.flops_ratio in (None, axis.flops_ratio)
            ]
            found = session.runs(network, profile) if network else []
            per_profile[name] = underfit(found).table.assign(profile=name, epochs=profile.base_config().epochs)
        both = pd.concat(per_profile.values(), ignore_index=True)
        counts = both.groupby("method")["profile"].nunique()
        rows.append(both[both["method"].isin(counts[counts > 1].index)])
    columns = ["method", "label", "profile", "epochs", "n", "train_loss", "test_top1"]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def longer_text(table: pd.DataFrame) -> str:
    """:func:`longer` in words: per method, the final training cross-entropy and test top-1 from its
    shortest to its longest profile, and what they show together."""
    if not len(table):
        return "No method has finished runs at two training lengths of the same data yet."
    parts, fits, gains = [], 0, 0
    methods_ = list(dict.fromkeys(table["method"]))
    for method in methods_:
        rows = table[table["method"] == method].sort_values("epochs")
        short, long_ = rows.iloc[0], rows.iloc[-1]
        fits += long_.train_loss < short.train_loss
        gains += long_.test_top1 > short.test_top1
        parts.append(
            f"{short.label}: training cross-entropy {short.train_loss:.2f} → {long_.train_loss:.2f}, test top-1 "
            f"{short.test_top1:.2f}% → {long_.test_top1:.2f}% ({short.profile}, n = {short.n} → {long_.profile}, n = {long_.n})"
        )
    text = "Trained longer on the same data: " + "; ".join(parts) + "."
    if fits == gains == len(methods_):
        text += (
            f" Each of the {len(methods_)} fits its training data further and ends higher on test when trained longer: "
            "the shorter profile stops these networks before they converge."
        )
    return text


def orthogonality(session, key: str = "orthogonality") -> pd.DataFrame:
    """How orthogonal the factors of comparison ``key``'s methods end up at each profile of the regime
    axis (:func:`elrt_core.study.tables.orthogonality` of its runs there, from the runs that logged it),
    with a ``profile`` column in axis order; profiles without such runs are left out. Runs made before the
    logging (most of cpu-full's) have none, so a longer profile can hold the only measurement."""
    from .tables import orthogonality as measured

    frames = []
    for name in regime().profiles:
        profile = load(name)
        if key not in profile.comparisons:
            continue
        planned = plan.comparison(profile, key)
        found = measured(session.runs(planned, profile)) if planned else pd.DataFrame()
        if len(found):
            frames.append(found.assign(profile=name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["profile", "method", "label", "n"])


def orthogonality_text(table: pd.DataFrame, reference: str, treatment: str) -> str:
    """:func:`orthogonality` in words, per profile where both methods logged it: each factor set's SO per
    rank (0: orthonormal) and mean squared row norm (1: orthonormal) from ``reference`` to ``treatment``
    (e.g. "At cpu-full-30 (n = 3 and 3), from Tucker-2 to Tucker-2 + SO (U2): U2 SO / rank 0.515 → 0.202,
    mean squared norm 0.497 → 0.639; U1 ..."), or why there is nothing to compare."""
    parts = []
    for name in dict.fromkeys(table["profile"]):
        rows = table[table["profile"] == name].set_index("method")
        if reference not in rows.index or treatment not in rows.index:
            continue
        a, b = rows.loc[reference], rows.loc[treatment]
        sets = [
            f"{f} SO / rank {a[f'so_rank_{f}']:.3f} → {b[f'so_rank_{f}']:.3f}, mean squared norm {a[f'sq_norm_{f}']:.3f} → "
            f"{b[f'sq_norm_{f}']:.3f}"
            for f in ("U2", "U1")
            if f"so_rank_{f}" in rows.columns and not (pd.isna(a[f"so_rank_{f}"]) or pd.isna(b[f"so_rank_{f}"]))
        ]
        parts.append(f"At {name} (n = {a['n']} and {b['n']}), from {a['label']} to {b['label']}: " + "; ".join(sets))
    if not parts:
        return "No profile has runs of both methods that logged how orthogonal their factors end up yet."
    return ". ".join(parts) + " (SO / rank: 0 when orthonormal; mean squared norm: 1 when orthonormal)."


def _effect_plan(profile: Profile, treatment: str, reference: str) -> list[PlannedRun]:
    """The planned runs of ``treatment`` and ``reference`` on the regime network in ``profile``."""
    axis = regime()
    return [
        r
        for r in plan.plan(profile)
        if r.method in (treatment, reference)
        and r.config.model == axis.model
        and (r.config.flops_ratio in (None, axis.flops_ratio))
    ]


def trend(session, effects: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """Each effect of the regime axis (or of ``effects``, ``(treatment, reference)`` pairs of it) at each of
    its profiles: one row per (effect, profile) with
    ``effect`` (label), ``profile``, ``epochs``, ``steps`` (:func:`steps`), ``n``, ``mean``, ``low``,
    ``high`` (95% CI, NaN below two seeds), ``verdict`` (unadjusted, with the axis's smallest effect of
    interest) and ``text`` (:meth:`stats.Paired.effect`)."""
    from .verdicts import values

    axis, rows = regime(), []
    smallest = axis.smallest_effect
    chosen = axis.effects if effects is None else tuple(effects)
    unknown = [e for e in chosen if e not in axis.effects]
    if unknown:
        raise ValueError(f"effects {unknown} are not on the regime axis; it follows {list(axis.effects)}")
    for treatment, reference in chosen:
        for name in axis.profiles:
            profile = load(name)
            planned = _effect_plan(profile, treatment, reference)
            if {r.method for r in planned} != {treatment, reference}:
                continue  # the profile does not plan this effect: no row, so nothing says "not yet trained"
            # read through the session, which trains only its own profile's missing runs and only where allowed
            found = values(session.runs(planned, profile))
            c = stats.paired(found.get(reference, {}), found.get(treatment, {}), names=(reference, treatment), smallest=smallest)
            rows.append(
                {
                    "effect": effect_label(treatment, reference),
                    "profile": name,
                    "epochs": profile.base_config().epochs,
                    "steps": steps(profile),
                    "n": c.n,
                    "mean": c.mean,
                    "low": c.low,
                    "high": c.high,
                    "verdict": c.verdict if c.n else "no runs yet",
                    "text": c.effect(),
                    "diffs": c.diffs,
                }
            )
    return pd.DataFrame(rows)


def trained(table: pd.DataFrame) -> list[str]:
    """The profiles of a :func:`trend` table where at least one effect has paired runs (n > 0), in axis order."""
    return list(dict.fromkeys(table.loc[table["n"] > 0, "profile"]))


def _interval(r) -> str:
    """``" (95% CI +0.21 to +0.95, supported)"``: one trend row's unadjusted interval and word, or ``""``."""
    if r.n < 2 or math.isnan(r.low):
        return ""
    low, high = (decimals(decisive(v, 0.0, 2), 2, sign=True) for v in (r.low, r.high))
    return f" (95% CI {low} to {high}, {r.verdict})"


def trend_sentence(table: pd.DataFrame, effect: str) -> str:
    """``effect`` across the regime in one sentence, each profile's unadjusted 95% interval and word where it
    has two seeds or more, and the profiles that plan it but have no runs yet in one closing clause:
    ``"<effect>: +1.81 (95% CI +0.62 to +3.00, supported) at cpu-quick (2,340 steps, n = 3) → +0.58 (...)
    at cpu-full (5,265 steps, n = 5) (no runs yet at cpu-full-30, cpu-full-60)"``."""
    rows = table[table["effect"] == effect].sort_values("steps")
    parts = [f"{r.mean:+.2f}{_interval(r)} at {r.profile} ({r.steps:,} steps, n = {r.n})" for r in rows.itertuples() if r.n]
    waiting = ", ".join(rows.loc[rows["n"] == 0, "profile"])
    if not parts:
        return f"{effect}: no runs yet at {waiting}"
    return f"{effect}: " + " → ".join(parts) + (f" (no runs yet at {waiting})" if waiting else "")


def stability(table: pd.DataFrame, effect: str) -> str:
    """Whether ``effect`` keeps its direction across the profiles of the axis with runs, in words. A sign is
    *established* at a profile whose interval excludes 0 (two seeds or more); estimates of opposite sign
    without intervals that establish both are told apart from a flip:
    ``"one sign at every profile with runs (...)"``; ``"the sign flips between profiles (intervals
    excluding 0: + at cpu-quick, − at cpu-full): a verdict on it is bound to its profile"``; ``"the
    estimates differ in sign (+ at cpu-quick, n = 1; − at cpu-full, n = 3), but no intervals establish
    opposite signs"``; ``"runs at one profile only: no trend yet"``."""
    rows = table[(table["effect"] == effect) & (table["n"] > 0)].sort_values("steps")
    if len(rows) < 2:
        return "runs at one profile only: no trend yet"
    signs = {r.profile: "+" if r.mean > 0 else "−" if r.mean < 0 else "0" for r in rows.itertuples()}
    if len(set(signs.values())) == 1:
        return f"one sign at every profile with runs ({', '.join(signs)})"
    established = {r.profile: signs[r.profile] for r in rows.itertuples() if r.n >= 2 and (r.low > 0 or r.high < 0)}
    if len(set(established.values())) > 1:
        where = ", ".join(f"{sign} at {name}" for name, sign in established.items())
        return f"the sign flips between profiles (intervals excluding 0: {where}): a verdict on it is bound to its profile"
    where = "; ".join(f"{signs[r.profile]} at {r.profile}, n = {r.n}" for r in rows.itertuples())
    return f"the estimates differ in sign ({where}), but no intervals establish opposite signs"


def movement(table: pd.DataFrame, effect: str) -> str:
    """How ``effect`` moves between consecutive regime profiles that differ only in epochs (the same data),
    each pair where both have two seeds or more: ``"from cpu-full to cpu-full-30 (same data, 2x the steps)
    it grows, from +0.30 to +1.00 points: not an effect of training speed alone"`` (or shrinks, or changes
    sign), and where the two 95% intervals overlap, ``"grows in its estimate ...: the intervals overlap, so
    the change is not established"``; pairs joined by "; ", ``""`` where no pair has runs. An effect that
    shrinks as the same networks train longer is one of how fast each method fits; one that holds or grows
    is not that alone."""
    rows = table[table["effect"] == effect].set_index("profile")
    steps_apart = []
    for group in (g for g in _same_data() if len(g) > 1):
        have = [name for name in group if name in rows.index and rows.loc[name, "n"] >= 2]
        steps_apart += [_moved(rows, a, b) for a, b in zip(have, have[1:])]
    return "; ".join(steps_apart)


def _moved(rows: pd.DataFrame, shorter: str, longer: str) -> str:
    """One step of :func:`movement`: ``effect`` (``rows`` indexed by profile) from ``shorter`` to ``longer``."""
    short, long_ = rows.loc[shorter], rows.loc[longer]
    ratio = long_["steps"] / short["steps"]
    apart = short["high"] < long_["low"] or long_["high"] < short["low"]  # the two intervals do not overlap
    if short["mean"] * long_["mean"] < 0:
        how, reading = "changes sign", "the shorter profile's verdict does not carry over"
    elif abs(long_["mean"]) < abs(short["mean"]):
        how, reading = "shrinks", "partly an effect of how fast each method fits"
    else:
        how, reading = "grows", "not an effect of training speed alone"
    if not apart:
        how = f"{how} in its estimate"
        reading = "the intervals overlap, so the change is not established" + (
            "; no sign that the effect is one of training speed alone" if "grows" in how else ""
        )
    return (
        f"from {shorter} to {longer} (same data, {ratio:g}x the steps) it {how}, from {short['mean']:+.2f} to "
        f"{long_['mean']:+.2f} points: {reading}"
    )


def chapter_note(session, effects: Sequence[tuple[str, str]] = (), subject: str = "This verdict", diagnose=None) -> str:
    """The regime paragraph of a chapter's "what would change this verdict": the profile ``subject`` is
    made at, how far that profile's networks trained (:meth:`Diagnostics.text`, from the histories; the
    finished runs on the regime network, read from the records and never trained here, or ``diagnose``,
    the runs the chapter itself analyses), the profiles of the axis (:func:`axis_text`), and each of
    ``effects`` (pairs of the regime axis) across them with unadjusted intervals (:func:`trend_sentence`),
    whether its sign holds (:func:`stability`) and how it moves on the same data (:func:`movement`)."""
    axis = regime()
    if diagnose is None:
        network = [
            r
            for r in plan.plan(session.profile)
            if r.config.model == axis.model and r.config.flops_ratio in (None, axis.flops_ratio)
        ]
        folder = session.root / session.profile.name
        diagnose = [(r, rec) for r in network if (rec := lookup(r.config, folder)) is not None and rec.finished]
        whose = f"its networks ({axis.model}, {axis.flops_ratio:g}x fewer FLOPs)"
    else:
        whose = "the networks this chapter analyses"
    diagnostics = underfit(diagnose)
    text = f"{subject} is made at {session.profile.describe()}."
    if diagnostics.runs:
        text += f" *How far {whose} trained:* {diagnostics.text()}"
    text += f" *Across training lengths:* the training-length chapter follows the book's key effects across {axis_text()}."
    if effects:
        table = trend(session, effects=effects)
        text += (
            " This chapter's effects there (unadjusted 95% intervals, one per effect and profile; a verdict that makes "
            "several comparisons corrects for them, so its word can be weaker):\n"
        )
        for t, r in effects:
            label = effect_label(t, r)
            moved = movement(table, label)
            text += f"\n- {trend_sentence(table, label)}; {stability(table, label)}" + (f"; {moved}" if moved else "") + "."
    return text
