"""Does SO help through orthogonality? The controls without any orthogonality penalty read against SO itself.

Issue 25 (B1): SO on :math:`U^{(2)}` raises plain Tucker-2's accuracy, but the penalty also fixes the
norm of the factor's rows, on which weight decay acts and which (with batch norm after the layer) sets
the factor's effective learning rate. The penalty-free controls change only the decay or the
initialization. Each control is placed against SO, seed by seed, in final test top-1:

* **above** SO: its Holm interval (step-down over the planned controls) excludes 0 upwards;
* **within** ± the smallest effect of interest of SO: its Bonferroni interval over the planned controls
  lies inside that band (an equivalence reading, so each control is held to the family level, not
  Holm's step-down, which orders by the test of a difference from 0);
* **below** SO: its Holm interval excludes 0 downwards and it is not within;
* otherwise not resolved.

One rule turns these places into an answer:

* some control ends above SO, or within the band of SO while its own gain over plain Tucker-2 (as the
  chapter's controls family judges it) is *supported*: a gain of SO's size does not need an
  orthogonality penalty here (the orthonormal initialization is orthogonality without a penalty; none of
  this shows how SO itself acts);
* every planned control has results and ends below SO: none of them reaches SO's accuracy, so among
  these controls only the penalty gives its full gain, which leaves orthogonality (or another effect of
  the penalty) as the explanation;
* otherwise: not resolved, naming each control that is not placed and why (interval too wide, no
  supported gain over plain Tucker-2, or no runs).

The rule was first written after the first two seeds of the weight-decay controls were known (cpu-full,
2026-12-06) and before their third; the same day, before the third seed, a review made "within" an
equivalence reading at the Bonferroni level that also needs a gain over plain Tucker-2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..profiles import Comparison
from . import stats
from .verdicts import Runs, detectable_text, labels, values

__all__ = ["Placed", "Reading", "reading"]


@dataclass(frozen=True)
class Placed:
    """One control against SO: ``versus`` (control − SO, Holm), ``band`` (the same at the Bonferroni
    level, for the equivalence reading), ``gain`` (control − plain Tucker-2; ``None`` where none was
    given) and ``place``: ``"above"``, ``"within"``, ``"below"`` or ``"not resolved"``."""

    versus: stats.Paired
    band: stats.Paired
    gain: stats.Paired | None
    place: str

    @property
    def reaches(self) -> bool:
        """Whether the control reaches SO's accuracy by the rule: above it, or within its band with a
        supported gain over the baseline."""
        return self.place == "above" or (self.place == "within" and self.gain is not None and self.gain.verdict == "supported")


@dataclass(frozen=True)
class Reading:
    """``placed``: each control with results (plan order); ``lines``: each in words; ``answer``: the
    rule's sentence (module docstring); ``detectable``: the smallest difference from SO these n could
    detect, in words."""

    placed: list[Placed]
    lines: str
    answer: str
    detectable: str


def _place(versus: stats.Paired, band: stats.Paired, smallest: float) -> str:
    if versus.verdict == "supported":
        return "above"
    if -smallest < band.low and band.high < smallest:
        return "within"
    return "below" if versus.verdict == "contradicted" else "not resolved"


def _line(p: Placed, names: Mapping[str, str], smallest: float) -> str:
    ref = names[p.versus.reference]
    where = {"above": f"above {ref}", "below": f"below {ref}", "not resolved": f"undetermined against {ref}"}
    where["within"] = (
        f"within ±{smallest:g} points of {ref} (Bonferroni {100 * p.band.confidence:.3g}% CI {p.band.low:+.2f} to {p.band.high:+.2f})"
    )
    text = f"{names[p.versus.treatment]}: {where[p.place]}, {p.versus.effect()}"
    if p.gain is not None:
        text += f"; against {names[p.gain.reference]} ({p.gain.verdict}) {p.gain.effect()}"
    return text


def _answer(placed: Sequence[Placed], missing: Sequence[str], names: Mapping[str, str], reference: str, smallest: float) -> str:
    ref = names[reference]
    if not placed and not missing:
        return "This profile trains no penalty-free control."
    reaching = [names[p.versus.treatment] for p in placed if p.reaches]
    if reaching:
        verb = "ends" if len(reaching) == 1 else "end"
        return (
            f"Without the penalty, {' and '.join(reaching)} {verb} above {ref} or within ±{smallest:g} points of it with a "
            f"gain over plain Tucker-2: a gain of SO's size does not need an orthogonality penalty here (this does not "
            f"show how SO itself acts)."
        )
    if not missing and all(p.place == "below" for p in placed):
        return (
            f"No penalty-free control reaches {ref}: every one ends below it, so among these controls only the penalty "
            f"gives its full gain, which leaves orthogonality (or another effect of the penalty) as the explanation."
        )
    wide = [f"{names[p.versus.treatment]} ({p.versus.mean:+.2f} points)" for p in placed if p.place == "not resolved"]
    weak = [names[p.versus.treatment] for p in placed if p.place == "within" and not p.reaches]
    parts = []
    if wide:
        parts.append(
            f"{'the interval of ' if len(wide) == 1 else 'the intervals of '}{' · '.join(wide)} against {ref} "
            f"{'is' if len(wide) == 1 else 'are'} too wide to tell whether {'it ends' if len(wide) == 1 else 'they end'} "
            f"above it, within ±{smallest:g} points of it or below it"
        )
    if weak:
        parts.append(
            f"{' · '.join(weak)} {'is' if len(weak) == 1 else 'are'} within ±{smallest:g} points of {ref}, but "
            f"{'its' if len(weak) == 1 else 'their'} gain over plain Tucker-2 is not supported"
        )
    if missing:
        parts.append(f"{' · '.join(names[m] for m in missing)} {'has' if len(missing) == 1 else 'have'} no paired runs yet")
    return f"Not resolved yet: {'; '.join(parts)}."


def reading(runs: Runs, comparison: Comparison, planned_methods: Sequence[str], gains: Sequence[stats.Paired] = ()) -> Reading:
    """The penalty-free controls of ``comparison`` (its ``methods``, those among ``planned_methods``, the
    methods the profile trains) against its ``reference`` (SO on :math:`U^{(2)}`), in the final test top-1
    of those ``runs`` on the comparison's network, paired by seed, with the module's rule as ``answer``.
    ``gains``: each control against plain Tucker-2 as the chapter's controls family judged it
    (:func:`.verdicts.ranking`), so that a comparison reads the same word wherever the chapter shows it."""
    s = comparison.smallest_effect
    if s is None:
        raise ValueError("the mechanism reading needs the comparison's smallest effect of interest")
    on_network = [
        (run, rec)
        for run, rec in runs
        if comparison.model in (None, run.config.model) and comparison.flops_ratio in (None, run.config.flops_ratio)
    ]
    names, accuracy = labels(on_network), values(on_network)
    ref = comparison.reference
    controls = [m for m in comparison.methods if m in set(planned_methods) and m != ref]
    present = [m for m in controls if m in accuracy] if ref in accuracy else []
    versus = stats.holm([(accuracy[ref], accuracy[m], (ref, m)) for m in present], family=len(controls), smallest=s)
    level = stats.bonferroni(len(controls))
    band = [stats.paired(accuracy[ref], accuracy[m], names=(ref, m), confidence=level, smallest=s) for m in present]
    gain = {g.treatment: g for g in gains if g.n}
    placed = [Placed(v, b, gain.get(v.treatment), _place(v, b, s)) for v, b in zip(versus, band, strict=True) if v.n]
    missing = [m for m in controls if m not in {p.versus.treatment for p in placed}]
    return Reading(
        placed,
        "; ".join(_line(p, names, s) for p in placed) or "no paired runs yet",
        _answer(placed, missing, names, ref, s),
        detectable_text([p.versus for p in placed]),
    )
