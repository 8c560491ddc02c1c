"""The book's answer in plain sentences, computed from the runs (the introduction shows them first).

Each sentence is built from the finished runs of one network and says what the numbers say, with the
direction decided by the numbers, never typed: the accuracy of dense against the low-rank networks, which
format trains best without a regularizer, and where the headline method (ELRT) ends among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..records import Record
from .plan import PlannedRun
from .stats import Paired

__all__ = ["mean_accuracy", "accuracy_sentences"]

Runs = Sequence[tuple[PlannedRun, Record]]


def mean_accuracy(runs: Runs) -> dict[str, tuple[float, int]]:
    """``{method: (mean final test top-1, n)}`` over the finished ``runs`` (a run listed twice counts once)."""
    found: dict[str, dict[int, float]] = {}
    for run, rec in runs:
        found.setdefault(run.method, {})[run.config.seed] = float(rec.metrics["final_test_top1"])
    return {m: (sum(v.values()) / len(v), len(v)) for m, v in found.items()}


def _span(values: Sequence[float], digits: int = 2, unit: str = "%") -> str:
    low, high = min(values), max(values)
    return (
        f"{low:.{digits}f}{unit}"
        if f"{low:.{digits}f}" == f"{high:.{digits}f}"
        else f"{low:.{digits}f} to {high:.{digits}f}{unit}"
    )


def accuracy_sentences(
    runs: Runs,
    names: Mapping[str, str],
    *,
    reference: str,
    headline: str,
    formats: Sequence[str],
    headline_vs: Sequence[Paired] = (),
) -> list[str]:
    """Up to three sentences on one network's runs: how far every low-rank method ends below (or above)
    ``reference`` (dense); which of the plain ``formats`` (trained without a regularizer) ends lowest
    and highest; and where ``headline`` ends against them, with its paired comparisons ``headline_vs``
    (each ``reference`` an opponent, as :func:`elrt_core.study.verdicts.beats_claim` returns them) in words."""
    acc = mean_accuracy(runs)
    out = []
    low_rank = {m: v for m, v in acc.items() if m != reference}
    if reference in acc and low_rank:
        dense, n = acc[reference]
        gaps = [dense - a for a, _ in low_rank.values()]
        side = "below" if min(gaps) > 0 else ("above" if max(gaps) < 0 else "around")
        out.append(
            f"The dense network reaches {dense:.2f}% test top-1 (n = {n}); every low-rank network of this budget ends "
            f"{_span([abs(g) for g in gaps], 1, '')} points {side} it ({_span([a for a, _ in low_rank.values()])})."
        )
    plain = {f: acc[f] for f in formats if f in acc}
    if len(plain) >= 2:
        order = sorted(plain, key=lambda f: plain[f][0])
        lowest, highest = order[0], order[-1]
        out.append(
            f"Trained without a regularizer, {names.get(lowest, lowest)} ends lowest of the {len(plain)} formats "
            f"({plain[lowest][0]:.2f}%) and {names.get(highest, highest)} highest ({plain[highest][0]:.2f}%)."
        )
    if headline in acc and plain:
        others = [plain[f][0] for f in plain if f != headline]
        words = "; ".join(f"against {names.get(c.reference, c.reference)} {c.mean:+.2f} points, {c.verdict}" for c in headline_vs)
        position = (
            "above all of them"
            if others and acc[headline][0] > max(others)
            else ("below all of them" if others and acc[headline][0] < min(others) else "among them")
        )
        out.append(
            f"{names.get(headline, headline)} ends at {acc[headline][0]:.2f}% (n = {acc[headline][1]}), {position}"
            + (f" (the other formats: {_span(others)})" if others else "")
            + (f": {words}." if words else ".")
        )
    return out
