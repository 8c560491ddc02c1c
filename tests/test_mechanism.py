"""The penalty-free controls read against SO itself (elrt_core.study.mechanism): words and the rule."""

from types import SimpleNamespace

import pytest

from elrt_core.profiles import Comparison, load
from elrt_core.study import mechanism

SO, FROB, NODECAY, ORTH = "tucker2+so", "tucker2-frobdecay", "tucker2-nodecay", "tucker2+orth-init"
C = Comparison(reference=SO, methods=(FROB, NODECAY, ORTH), smallest_effect=0.5)


def _run(method, seed, acc):
    return (
        SimpleNamespace(method=method, label=method.upper(), config=SimpleNamespace(seed=seed)),
        SimpleNamespace(metrics={"final_test_top1": acc}),
    )


def _runs(offsets: dict[str, list[float]]):
    """SO at 84 + a seed effect; each control at SO + its offsets, seed by seed."""
    runs = [_run(SO, s, 84.0 + 0.3 * s) for s in range(3)]
    for method, deltas in offsets.items():
        runs += [_run(method, s, 84.0 + 0.3 * s + d) for s, d in enumerate(deltas)]
    return runs


def test_a_control_above_so_answers_that_the_gain_needs_no_orthogonality():
    r = mechanism.reading(_runs({FROB: [1.9, 2.0, 2.1], NODECAY: [-1.0, -1.2, -0.9]}), C, [SO, FROB, NODECAY, ORTH])
    assert [(c.treatment, c.verdict) for c in r.comparisons] == [(FROB, "supported"), (NODECAY, "contradicted")]
    # Holm over the 3 planned controls (orth-init without runs still counts): the smallest p is tested at 0.05 / 3
    assert max(c.confidence for c in r.comparisons) == pytest.approx(1 - 0.05 / 3)
    assert "TUCKER2-FROBDECAY: above TUCKER2+SO, +2.00 points (Holm 98.3% CI" in r.lines
    assert "TUCKER2-NODECAY: below TUCKER2+SO" in r.lines
    assert r.answer.startswith("Without any orthogonality penalty, TUCKER2-FROBDECAY ends above or within ±0.5 points")
    assert r.detectable.startswith("Smallest difference detectable at n = 3")


def test_a_control_within_the_smallest_effect_also_reaches_so():
    r = mechanism.reading(_runs({NODECAY: [0.02, -0.03, 0.01, 0.0]}), C, [SO, NODECAY])  # a family of 1: plain 95%
    assert r.comparisons[0].verdict == "no meaningful effect" and r.comparisons[0].adjustment == ""
    assert "within ±0.5 points of TUCKER2+SO" in r.lines and r.answer.startswith("Without any orthogonality penalty")


def test_every_control_below_so_leaves_orthogonality_only_when_all_planned_have_results():
    below = {FROB: [-1.0, -1.1, -0.9], NODECAY: [-2.0, -2.2, -1.9], ORTH: [-1.5, -1.4, -1.6]}
    complete = mechanism.reading(_runs(below), C, [SO, FROB, NODECAY, ORTH])
    assert all(c.verdict == "contradicted" for c in complete.comparisons)
    assert complete.answer.startswith("Every penalty-free control ends below TUCKER2+SO")
    del below[ORTH]
    partial = mechanism.reading(_runs(below), C, [SO, FROB, NODECAY, ORTH])
    assert partial.answer == "Not resolved yet: Tucker-2, U2 orthonormal at init is not yet placed against TUCKER2+SO."
    # a profile that never trains orth-init does not wait for it
    assert mechanism.reading(_runs(below), C, [SO, FROB, NODECAY]).answer.startswith("Every penalty-free control")


def test_noisy_or_missing_controls_are_not_resolved():
    r = mechanism.reading(_runs({FROB: [2.0, -1.5, 0.4]}), C, [SO, FROB, NODECAY])
    assert r.comparisons[0].verdict == "inconclusive" and "not resolved against TUCKER2+SO" in r.lines
    assert r.answer == (
        "Not resolved yet: TUCKER2-FROBDECAY · Tucker-2, no weight decay on its factors are not yet placed against TUCKER2+SO."
    )
    none = mechanism.reading([_run(FROB, 0, 85.0)], C, [SO, FROB])  # SO itself has no runs
    assert none.comparisons == [] and none.lines == "no paired runs yet"
    assert none.detectable.startswith("No detectable effect can be stated yet")
    assert mechanism.reading(_runs({}), C, [SO]).answer == "This profile trains no penalty-free control."  # e.g. smoke


def test_the_reading_needs_a_smallest_effect_and_the_profiles_declare_one():
    with pytest.raises(ValueError, match="smallest effect"):
        mechanism.reading([], Comparison(reference=SO, methods=(FROB,)), [SO, FROB])
    declared = load("cpu-full").comparisons["mechanism"]
    assert declared.reference == SO and declared.smallest_effect == 0.5
    assert set(declared.methods) == {FROB, NODECAY, ORTH}  # the penalty-free controls, never a penalized one
