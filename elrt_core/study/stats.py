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
*contradicted* when it excludes 0 the other way, *inconclusive* otherwise (and always for n < 2).

More than two methods (:func:`against_reference`, :func:`omnibus`): each method is compared with a
reference with Bonferroni-corrected intervals (confidence ``1 - 0.05 / k`` for the k comparisons of
the planned family, fixed in advance: a method without runs yet counts, so an interval against the
reference does not widen when other methods' runs land), and
an omnibus within-seed permutation test says whether the methods differ at all; no "best" method
is named unless its interval against every other excludes 0 (:func:`leader`).
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
    "CONFIDENCE",
    "VERDICTS",
]

CONFIDENCE = 0.95
VERDICTS = ("supported", "contradicted", "inconclusive")
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


def verdict(low: float, high: float, direction: int = 1) -> str:
    """*supported* if ``[low, high]`` excludes 0 on the side of ``direction`` (+1: the treatment is
    claimed higher, -1: lower), *contradicted* if it excludes 0 on the other side, else *inconclusive*."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if math.isnan(low) or math.isnan(high) or low <= 0 <= high:
        return "inconclusive"
    return "supported" if (low > 0) == (direction > 0) else "contradicted"


@dataclass(frozen=True)
class Paired:
    """A paired comparison: ``treatment - reference`` over the ``seeds`` both have (points)."""

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

    @property
    def n(self) -> int:
        return len(self.seeds)

    def effect(self, unit: str = "points", digits: int = 2) -> str:
        """E.g. ``"+1.23 points (95% CI +0.41 to +2.05, n = 5, sign-flip p = 0.062)"``; without an
        interval when n < 2. A Bonferroni-corrected interval shows its level (e.g. ``98.3% CI``); the
        exact p-value cannot fall below ``2 / 2^n`` (0.125 at n = 4), so the verdict rests on the interval; a p at
        that floor says so (``"p = 0.062, its floor at n = 5"``).
        An interval's end keeps the decimals that decide its sign (:func:`_bound`)."""
        unit = f" {unit}" if unit else ""
        if self.n == 0:
            return "no paired runs yet"
        if self.n < 2:
            return f"{self.mean:+.{digits}f}{unit} (n = {self.n}: no interval)"
        if math.isnan(self.low):
            return f"{self.mean:+.{digits}f}{unit} (n = {self.n}, every difference equal: no interval, sign-flip p = {self.p_value:.2g})"
        level = f"{100 * self.confidence:.3g}%"
        floor = f", its floor at n = {self.n}" if self.n <= _EXACT_LIMIT and self.p_value <= least_p(self.n) * (1 + 1e-9) else ""
        return (
            f"{self.mean:+.{digits}f}{unit} ({level} CI {_bound(self.low, digits)} to {_bound(self.high, digits)}, n = {self.n}, "
            f"sign-flip p = {self.p_value:.2g}{floor})"
        )


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
) -> Paired:
    """Compare ``treatment`` with ``reference`` (``{seed: value}``) over their common seeds.

    ``direction``: the sign the claim predicts for ``treatment - reference`` (see :func:`verdict`).
    """
    seeds = tuple(sorted(set(reference) & set(treatment)))
    diffs = tuple(float(treatment[s]) - float(reference[s]) for s in seeds)
    low, high = t_interval(diffs, confidence)
    mean = float(np.mean(diffs)) if diffs else math.nan
    return Paired(
        names[0], names[1], seeds, diffs, mean, low, high, sign_flip_p(diffs), confidence, verdict(low, high, direction)
    )


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
) -> list[Paired]:
    """Every other method of ``values`` (``{method: {seed: value}}``) against ``reference``, with
    Bonferroni-corrected intervals (:func:`bonferroni`) over ``family`` comparisons: the planned
    number, which counts methods without values yet (default: the methods present)."""
    others = [m for m in values if m != reference]
    if family is not None and family < len(others):
        raise ValueError(f"a family of {family} comparisons cannot hold the {len(others)} methods present")
    level = bonferroni(len(others) if family is None else family, confidence)
    return [paired(values[reference], values[m], names=(reference, m), direction=direction, confidence=level) for m in others]


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
