"""Does SO help through orthogonality? The controls without any orthogonality penalty read against SO itself.

Issue 25 (B1): SO on :math:`U^{(2)}` raises plain Tucker-2's accuracy, but the penalty also fixes the
norm of the factor's rows, on which weight decay acts and which (with batch norm after the layer) sets
the factor's effective learning rate. The penalty-free controls change only the decay or the
initialization. Each is compared with SO on :math:`U^{(2)}` seed by seed (Holm's step-down over the
planned controls), and one rule turns the words into an answer:

* some control ends **above** SO, or **within ± the smallest effect of interest** of it: a gain of SO's
  size does not need an orthogonality penalty here (it does not show how SO itself acts);
* every planned control has results and ends **below** SO: of these controls, only the penalty gives the
  gain, which leaves orthogonality (or another effect of the penalty) as the explanation;
* otherwise: not resolved, naming what is missing.

The rule was written after the first two seeds of the weight-decay controls were known (cpu-full,
2026-12-06) and before their third; the chapter says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..profiles import Comparison
from . import stats
from .verdicts import Runs, detectable_text, labels, values

__all__ = ["Reading", "reading", "RELATION"]

RELATION = {
    "supported": "above {ref}",
    "contradicted": "below {ref}",
    "no meaningful effect": "within ±{smallest:g} points of {ref}",
    "inconclusive": "not resolved against {ref}",
}
"""The verdict word of ``control − reference`` (direction +1) as the control's place relative to the reference."""


@dataclass(frozen=True)
class Reading:
    """``comparisons``: each control with results minus the reference (final test top-1, points, Holm);
    ``lines``: each in words; ``answer``: the rule's sentence (module docstring); ``detectable``: the
    smallest difference these n could detect, in words."""

    comparisons: list[stats.Paired]
    lines: str
    answer: str
    detectable: str


def _line(c: stats.Paired, names: Mapping[str, str], smallest: float) -> str:
    relation = RELATION[c.verdict].format(ref=names[c.reference], smallest=smallest)
    return f"{names[c.treatment]}: {relation}, {c.effect()}"


def _answer(
    comparisons: Sequence[stats.Paired], missing: Sequence[str], names: Mapping[str, str], reference: str, smallest: float
) -> str:
    ref = names[reference]
    if not comparisons and not missing:
        return "This profile trains no penalty-free control."
    reaching = [c for c in comparisons if c.verdict in ("supported", "no meaningful effect")]
    if reaching:
        which = " and ".join(names[c.treatment] for c in reaching)
        return (
            f"Without any orthogonality penalty, {which} {'ends' if len(reaching) == 1 else 'end'} above or within "
            f"±{smallest:g} points of {ref}: a gain of SO's size does not need orthogonality here (this does not show "
            f"how SO itself acts)."
        )
    if not missing and comparisons and all(c.verdict == "contradicted" for c in comparisons):
        return (
            f"Every penalty-free control ends below {ref}: of these controls only the penalty gives the gain, which "
            f"leaves orthogonality (or another effect of the penalty) as the explanation."
        )
    unresolved = [names[c.treatment] for c in comparisons if c.verdict == "inconclusive"] + [names[m] for m in missing]
    return f"Not resolved yet: {' · '.join(unresolved)} {'is' if len(unresolved) == 1 else 'are'} not yet placed against {ref}."


def reading(runs: Runs, comparison: Comparison, planned_methods: Sequence[str]) -> Reading:
    """The penalty-free controls of ``comparison`` (its ``methods``) against its ``reference`` (SO on
    :math:`U^{(2)}`) in ``runs``' final test top-1, paired by seed under Holm's step-down over those the
    profile trains (``planned_methods``), with the module's rule as ``answer``."""
    if comparison.smallest_effect is None:
        raise ValueError("the mechanism reading needs the comparison's smallest effect of interest")
    names, accuracy = labels(runs), values(runs)
    controls = [m for m in comparison.methods if m in set(planned_methods) and m != comparison.reference]
    present = [m for m in controls if m in accuracy] if comparison.reference in accuracy else []
    comparisons = stats.holm(
        [(accuracy[comparison.reference], accuracy[m], (comparison.reference, m)) for m in present],
        family=len(controls),
        smallest=comparison.smallest_effect,
    )
    missing = [m for m in controls if m not in present]
    lines = "; ".join(_line(c, names, comparison.smallest_effect) for c in comparisons) or "no paired runs yet"
    return Reading(
        comparisons,
        lines,
        _answer(comparisons, missing, names, comparison.reference, comparison.smallest_effect),
        detectable_text(comparisons),
    )
