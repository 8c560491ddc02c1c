"""Paired statistics for every comparison the book makes, and the verdict words they lead to.

Runs of two methods that share a seed share the data order, the augmentation and (for equal
architectures) the initialization, so a comparison is **paired by seed**: for the seeds both
methods have, the differences ``d_i = treatment_i - reference_i`` (in accuracy points) give

* the mean difference and its 95% confidence interval ``mean ± t_{0.975, n-1} · sd / sqrt(n)``
  (Student's t; needs n >= 2);
* a two-sided sign-flip permutation p-value: under "no difference" each ``d_i`` is as likely
  ``+|d_i|`` as ``-|d_i|``; p is the share of the ``2^n`` sign patterns whose mean is at least as far
  from 0 as the observed one (Fisher 1935; Good 2005), exact up to n = 20 and sampled above. With n = 5 the smallest possible p is
  2/32 = 0.0625, which is why the verdict rests on the interval, as the study's rules say.

Verdict words (:func:`verdict`): *supported* when the interval excludes 0 in the claimed direction,
*contradicted* when it excludes 0 the other way, *no meaningful effect* when it lies inside
``± smallest``, the smallest effect of interest the comparison declared in advance (``profiles.yaml``),
and *inconclusive* otherwise (and always for n < 2): an interval too wide to tell. Every comparison
also states its minimum detectable effect (:func:`minimum_detectable`): the true difference its n and
noise would detect with 80% power, so a reader tells "no difference" from "too few seeds to see one".

More than two methods (:func:`holm`, :func:`against_reference`, :func:`omnibus`): each method is
compared with a reference under Holm's step-down over the planned family of k comparisons (fixed in
advance: a method without runs yet counts; Holm 1979). Sorted by their paired-t p-values, the j-th
comparison (from 0) gets confidence ``1 - 0.05 / (k - j)`` while every earlier one excluded 0, and the
level of the first that did not from there on: the same family-wise error as Bonferroni
(``1 - 0.05 / k`` for all), never less power. An omnibus within-seed permutation test says whether the
methods differ at all; no "best" method is named unless its Bonferroni-corrected interval against every
other excludes 0 (:func:`leader`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from .display import decimals, decisive

__all__ = [
    "Paired",
    "paired",
    "verdict",
    "sign_flip_p",
    "t_interval",
    "ratio_interval",
    "against_reference",
    "bonferroni",
    "least_p",
    "omnibus",
    "leader",
    "mean_sd_n",
    "holm",
    "holm_levels",
    "t_test_p",
    "minimum_detectable",
    "combine",
    "CONFIDENCE",
    "POWER",
    "VERDICTS",
]

CONFIDENCE = 0.95
POWER = 0.8
"""Power at which :func:`minimum_detectable` states the smallest difference a comparison could detect."""
VERDICTS = ("supported", "contradicted", "no meaningful effect", "inconclusive")
_EXACT_LIMIT = 20  # enumerate all 2^n sign patterns up to this n; beyond, a seeded Monte Carlo sample
_BLOCK = 16  # sign patterns are enumerated 2^16 at a time
_MONTE_CARLO = 100_000


def t_interval(diffs: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean of ``diffs``; ``(nan, nan)`` for fewer than 2 values
    and for values that are all equal (sd = 0: the interval would have no width, not because the
    noise is small but because these few values did not show it). Non-finite values are an error."""
    d = _finite(diffs)
    if len(d) < 2 or d.std(ddof=1) <= 1e-9 * max(1.0, abs(float(d.mean()))):  # equal up to rounding
        return math.nan, math.nan
    half = scipy_stats.t.ppf(0.5 + confidence / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def _finite(values: Sequence[float]) -> np.ndarray:
    """``values`` as a float array; ValueError if any is NaN or infinite (no statistic is defined)."""
    d = np.asarray(values, dtype=float)
    if not np.isfinite(d).all():
        raise ValueError(f"paired statistics need finite values, got {d.tolist()}")
    return d


def ratio_interval(
    numerator: Sequence[float], denominator: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """Geometric mean of the paired ratios ``numerator_i / denominator_i`` and its Student-t interval,
    ``exp(mean(l) ± t_{(1+c)/2, n-1} · sd(l) / sqrt(n))`` with ``l_i = log(numerator_i / denominator_i)``;
    ``(ratio, nan, nan)`` for fewer than 2 pairs. Used for speedups: round ``i`` of the dense step
    over round ``i`` of the low-rank step, timed in turns in one process (:func:`elrt_core.timing.timed_turns`),
    so the interval covers step-to-step noise on one machine, not the spread between machines."""
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if a.shape != b.shape or len(a) == 0 or (a <= 0).any() or (b <= 0).any():
        raise ValueError(f"need two equally long lists of positive times, got {len(a)} and {len(b)} values")
    logs = np.log(a / b)
    low, high = t_interval(logs, confidence)
    return float(math.exp(logs.mean())), math.exp(low), math.exp(high)


def sign_flip_p(diffs: Sequence[float], seed: int = 0) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean of ``diffs`` (1.0 for no values).

    For n <= 20 all ``2^n`` sign patterns are enumerated (in blocks of ``2^16``, so the 18 layers of
    a ResNet-20 get an exact p); above, ``100,000`` patterns are drawn with ``seed`` (the observed
    pattern counted once, so p > 0). The exact p is never below ``2 / 2^n`` (:func:`least_p`).
    """
    d = np.abs(_finite(diffs))
    if len(d) == 0:
        return 1.0
    observed = abs(float(np.mean(diffs))) - 1e-12  # tolerance: equal means count as "at least as far"
    if len(d) <= _EXACT_LIMIT:
        block = min(len(d), _BLOCK)
        sums = np.array(list(itertools.product((1.0, -1.0), repeat=block))) @ d[:block]
        heads = itertools.product((1.0, -1.0), repeat=len(d) - block)  # one empty pattern when n <= 16
        hits = sum(int(np.count_nonzero(np.abs(sums + np.dot(h, d[block:])) / len(d) >= observed)) for h in heads)
        return hits / 2 ** len(d)
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(_MONTE_CARLO, len(d)))
    return float((1 + np.sum(np.abs(signs @ d) / len(d) >= observed)) / (_MONTE_CARLO + 1))


def least_p(n: int) -> float:
    """The smallest exact two-sided sign-flip p-value ``n`` differences can give, ``2 / 2^n`` (every
    difference of one sign): 0.0625 at n = 5, so with five seeds the test alone never reaches 0.05."""
    return 2.0 / 2**n if n > 0 else 1.0


def verdict(low: float, high: float, direction: int = 1, smallest: float | None = None) -> str:
    """*supported* if ``[low, high]`` excludes 0 on the side of ``direction`` (+1: the treatment is
    claimed higher, -1: lower), *contradicted* if it excludes 0 on the other side, *no meaningful
    effect* if it lies strictly inside ``(-smallest, +smallest)`` (the smallest effect of interest,
    declared in advance; ``None``: no such check), else *inconclusive*."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if smallest is not None and not smallest > 0:
        raise ValueError(f"the smallest effect of interest must be > 0, got {smallest!r}")
    if math.isnan(low) or math.isnan(high):
        return "inconclusive"
    if not low <= 0 <= high:
        return "supported" if (low > 0) == (direction > 0) else "contradicted"
    if smallest is not None and -smallest < low and high < smallest:
        return "no meaningful effect"
    return "inconclusive"


def combine(words: Sequence[str]) -> str:
    """One word for several comparisons: *supported* if all are, *contradicted* if any is, *no
    meaningful effect* if all are, else *inconclusive* (also for none)."""
    for word in ("supported", "no meaningful effect"):
        if words and all(w == word for w in words):
            return word
    return "contradicted" if "contradicted" in words else "inconclusive"


def t_test_p(diffs: Sequence[float]) -> float:
    """Two-sided one-sample t-test p-value of the mean of ``diffs`` against 0 (NaN where
    :func:`t_interval` has no interval): ``p < 1 - c`` exactly when the ``c`` t-interval excludes 0,
    which is what lets :func:`holm` decide with intervals."""
    d = _finite(diffs)
    low, _ = t_interval(d)
    if math.isnan(low):
        return math.nan
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return float(2 * scipy_stats.t.sf(abs(t), len(d) - 1))


def minimum_detectable(sd: float, n: int, confidence: float = CONFIDENCE, power: float = POWER) -> float:
    """The smallest true mean difference a paired two-sided t-test at ``confidence`` detects with
    ``power``, given ``n`` pairs whose differences have standard deviation ``sd``:
    ``(t_{(1+c)/2, n-1} + t_{power, n-1}) · sd / sqrt(n)`` (the usual t approximation of the power
    of a one-sample t-test; e.g. Cohen 1988, ch. 2). NaN for n < 2 or a non-finite ``sd``."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    return float((scipy_stats.t.ppf(0.5 + confidence / 2, df) + scipy_stats.t.ppf(power, df)) * sd / math.sqrt(n))


@dataclass(frozen=True)
class Paired:
    """A paired comparison: ``treatment - reference`` over the ``seeds`` both have (points).
    ``adjustment``: how ``confidence`` was set for a family (``""``, ``"Bonferroni"``, ``"Holm"``);
    ``smallest``: the smallest effect of interest its verdict used (``None``: none declared)."""

    reference: str
    treatment: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    mean: float
    low: float
    high: float
    p_value: float
    confidence: float
    verdict: str
    adjustment: str = ""
    smallest: float | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def t_p(self) -> float:
        """Paired-t p-value (:func:`t_test_p`): what orders a Holm family."""
        return t_test_p(self.diffs) if self.n else math.nan

    @property
    def detectable(self) -> float:
        """:func:`minimum_detectable` at this comparison's n, spread and confidence (NaN below n = 2)."""
        sd = float(np.std(self.diffs, ddof=1)) if self.n >= 2 else math.nan
        return minimum_detectable(sd, self.n, self.confidence)

    def effect(self, unit: str = "points", digits: int = 2) -> str:
        """E.g. ``"+1.23 points (95% CI +0.41 to +2.05, n = 5, sign-flip p = 0.062)"``; without an
        interval when n < 2. An interval adjusted for a family shows its level and how (e.g. ``Holm
        98.8% CI``); the exact p-value cannot fall below ``2 / 2^n`` (0.125 at n = 4), so the verdict rests
        on the interval; a p at that floor says so (``"p = 0.062, its floor at n = 5"``).
        An interval's end keeps the decimals that decide its sign (:func:`_bound`)."""
        unit = f" {unit}" if unit else ""
        if self.n == 0:
            return "no paired runs yet"
        if self.n < 2:
            return f"{self.mean:+.{digits}f}{unit} (n = {self.n}: no interval)"
        if math.isnan(self.low):
            return f"{self.mean:+.{digits}f}{unit} (n = {self.n}, every difference equal: no interval, sign-flip p = {self.p_value:.2g})"
        level = f"{self.adjustment + ' ' if self.adjustment else ''}{100 * self.confidence:.3g}%"
        floor = f", its floor at n = {self.n}" if self.n <= _EXACT_LIMIT and self.p_value <= least_p(self.n) * (1 + 1e-9) else ""
        return (
            f"{self.mean:+.{digits}f}{unit} ({level} CI {_bound(self.low, digits)} to {_bound(self.high, digits)}, n = {self.n}, "
            f"sign-flip p = {self.p_value:.2g}{floor})"
        )

    def detectable_text(self, unit: str = "points", digits: int = 2) -> str:
        """``"detectable at n = 3: 2.1 points"``: the minimum detectable effect in words, or why there is none."""
        unit = f" {unit}" if unit else ""
        value = self.detectable
        if math.isnan(value):
            return f"n = {self.n}: no detectable effect can be stated (needs two unequal differences)"
        return f"detectable at n = {self.n} ({100 * POWER:.0f}% power): {value:.{digits}f}{unit}"


def _bound(value: float, digits: int) -> str:
    """An interval's end with ``digits`` decimals, or more where fewer would round it onto or across 0
    (-0.0003 stays "-0.0003", never "-0.00"): the verdict turns on its sign (:func:`display.decisive`)."""
    return decimals(decisive(value, 0.0, digits), digits, sign=True)


def paired(
    reference: Mapping[int, float],
    treatment: Mapping[int, float],
    *,
    names: tuple[str, str] = ("reference", "treatment"),
    direction: int = 1,
    confidence: float = CONFIDENCE,
    smallest: float | None = None,
    adjustment: str = "",
) -> Paired:
    """Compare ``treatment`` with ``reference`` (``{seed: value}``) over their common seeds.

    ``direction``: the sign the claim predicts for ``treatment - reference``; ``smallest``: the smallest
    effect of interest (see :func:`verdict`); ``adjustment``: the name of the family correction that
    set ``confidence``, for the text.
    """
    seeds = tuple(sorted(set(reference) & set(treatment)))
    diffs = tuple(float(treatment[s]) - float(reference[s]) for s in seeds)
    low, high = t_interval(diffs, confidence)
    mean = float(np.mean(diffs)) if diffs else math.nan
    word = verdict(low, high, direction, smallest)
    return Paired(names[0], names[1], seeds, diffs, mean, low, high, sign_flip_p(diffs), confidence, word, adjustment, smallest)


def holm_levels(p_values: Sequence[float], family: int | None = None, confidence: float = CONFIDENCE) -> list[float]:
    """The confidence of each comparison's interval under Holm's step-down (Holm 1979) over a family of
    ``family`` comparisons (default: ``len(p_values)``; more when planned ones have no values yet).

    In order of increasing p (NaN last), the j-th (from 0) is tested at ``alpha / (family - j)``,
    ``alpha = 1 - confidence``: its interval has confidence ``1 - alpha / (family - j)`` and excludes 0
    exactly when ``p < alpha / (family - j)`` (``p`` from :func:`t_test_p`). At the first that does not,
    the procedure stops: it and every later one keep that level, whose intervals then all contain 0."""
    k = len(p_values) if family is None else family
    if k < len(p_values):
        raise ValueError(f"a family of {k} comparisons cannot hold {len(p_values)}")
    alpha = 1 - confidence
    order = sorted(range(len(p_values)), key=lambda i: (math.isnan(p_values[i]), p_values[i]))
    levels = [confidence] * len(p_values)
    stopped: float | None = None
    for j, i in enumerate(order):
        levels[i] = stopped if stopped is not None else 1 - alpha / (k - j)
        if stopped is None and not p_values[i] < alpha / (k - j):
            stopped = levels[i]
    return levels


def holm(
    pairs: Sequence[tuple[Mapping[int, float], Mapping[int, float], tuple[str, str]]],
    *,
    family: int | None = None,
    direction: int = 1,
    confidence: float = CONFIDENCE,
    smallest: float | None = None,
) -> list[Paired]:
    """:func:`paired` of each ``(reference, treatment, names)`` of ``pairs`` at its Holm level
    (:func:`holm_levels` over ``family`` comparisons, default ``len(pairs)``); a family of one is a
    plain 95% interval."""
    first = [paired(r, t, names=n) for r, t, n in pairs]
    levels = holm_levels([c.t_p for c in first], family, confidence)
    size = len(pairs) if family is None else family
    return [
        paired(r, t, names=n, direction=direction, confidence=level, smallest=smallest, adjustment="Holm" if size > 1 else "")
        for (r, t, n), level in zip(pairs, levels, strict=True)
    ]


def bonferroni(family: int, confidence: float = CONFIDENCE) -> float:
    """Confidence of each of ``family`` intervals so that all hold together at ``confidence``:
    ``1 - (1 - confidence) / family`` (Bonferroni); ``confidence`` itself for a family of 0 or 1."""
    return 1 - (1 - confidence) / max(1, family)


def against_reference(
    values: Mapping[str, Mapping[int, float]],
    reference: str,
    *,
    direction: int = 1,
    confidence: float = CONFIDENCE,
    family: int | None = None,
    smallest: float | None = None,
) -> list[Paired]:
    """Every other method of ``values`` (``{method: {seed: value}}``) against ``reference`` under Holm's
    step-down (:func:`holm`) over ``family`` comparisons: the planned number, which counts methods
    without values yet (default: the methods present)."""
    others = [m for m in values if m != reference]
    pairs = [(values[reference], values[m], (reference, m)) for m in others]
    return holm(pairs, family=family, direction=direction, confidence=confidence, smallest=smallest)


def _spread(table: np.ndarray) -> float:
    """Variance of the method means of a (seeds x methods) table after removing each seed's mean."""
    centred = table - table.mean(axis=1, keepdims=True)
    return float(np.var(centred.mean(axis=0)))


def omnibus(values: Mapping[str, Mapping[int, float]], *, permutations: int = 20_000, seed: int = 0) -> tuple[float, int]:
    """``(p, n)``: do the methods differ at all? A within-seed permutation test on the seeds every
    method has (``n`` of them): the method labels are shuffled within each seed, and p is the share
    of shufflings whose spread of method means (after removing seed effects) is at least the
    observed one. Exact when ``(k!)^n`` is at most ``permutations``, else a seeded sample. ``p`` is
    NaN where no test is possible (fewer than 2 methods or 2 common seeds): with one seed every
    shuffling gives the observed spread, and a p of 1 would read as evidence of no difference."""
    methods = list(values)
    seeds = sorted(set.intersection(*(set(v) for v in values.values()))) if methods else []
    if len(methods) < 2 or len(seeds) < 2:
        return math.nan, len(seeds)
    table = np.array([[values[m][s] for m in methods] for s in seeds], dtype=float)
    observed = _spread(table) - 1e-12
    k, n = len(methods), len(seeds)
    if math.factorial(k) ** n <= permutations:
        orders = list(itertools.permutations(range(k)))
        hits = [
            _spread(np.array([row[list(o)] for row, o in zip(table, combo)])) >= observed
            for combo in itertools.product(orders, repeat=n)
        ]
        return float(np.mean(hits)), n
    rng = np.random.default_rng(seed)
    hits = sum(_spread(np.array([rng.permutation(row) for row in table])) >= observed for _ in range(permutations))
    return float((1 + hits) / (permutations + 1)), n


def leader(
    values: Mapping[str, Mapping[int, float]], confidence: float = CONFIDENCE, planned: Sequence[str] | None = None
) -> str | None:
    """The method whose paired difference to every other method has a (Bonferroni-corrected)
    interval above 0, or ``None``: a winner is named only outside the noise. ``planned``: every method
    of the comparison (default: those of ``values``). The family is its ``k(k-1)/2`` pairs, and no
    winner is named while a planned method has no values: it could be the one ahead."""
    methods = list(dict.fromkeys([*(planned or ()), *values]))  # planned or not, every method compared counts
    if any(m not in values for m in methods):
        return None
    k = len(methods)
    level = bonferroni(k * (k - 1) // 2, confidence)
    for m in values:
        others = [paired(values[o], values[m], confidence=level) for o in values if o != m]
        if others and all(c.n >= 2 and c.low > 0 for c in others):
            return m
    return None


def mean_sd_n(values: Sequence[float], digits: int = 2) -> str:
    """``"m ± sd (n)"`` (sample sd); ``"m (1)"`` for one value; an em dash for none."""
    v = [float(x) for x in values]
    if not v:
        return "—"
    if len(v) == 1:
        return f"{v[0]:.{digits}f} (1)"
    return f"{np.mean(v):.{digits}f} ± {np.std(v, ddof=1):.{digits}f} ({len(v)})"
