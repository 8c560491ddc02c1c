"""The penalty-free controls read against SO itself (elrt_core.study.mechanism): places, words and the rule."""

from types import SimpleNamespace

import pytest

from elrt_core.profiles import Comparison, load
from elrt_core.study import mechanism, stats

BASE, SO, FROB, NODECAY, ORTH = "tucker2", "tucker2+so", "tucker2-frobdecay", "tucker2-nodecay", "tucker2+orth-init"
C = Comparison(reference=SO, methods=(FROB, NODECAY, ORTH), model="resnet20", flops_ratio=2.0, smallest_effect=0.5)
ALL = [BASE, SO, FROB, NODECAY, ORTH]


def _run(method, seed, acc, model="resnet20"):
    return (
        SimpleNamespace(method=method, label=method.upper(), config=SimpleNamespace(seed=seed, model=model, flops_ratio=2.0)),
        SimpleNamespace(metrics={"final_test_top1": acc}),
    )


def _read(runs, comparison, planned):
    """The reading with the gains over Tucker-2 of a controls family of the planned controls (Holm)."""
    from elrt_core.study import verdicts

    acc = verdicts.values(runs)
    controls = [m for m in comparison.methods if m in planned]
    pairs = [(acc[BASE], acc[m], (BASE, m)) for m in controls if m in acc] if BASE in acc else []
    gains = stats.holm(pairs, family=max(1, len(controls)), smallest=0.5)
    return mechanism.reading(runs, comparison, planned, gains)


def _runs(offsets: dict[str, list[float]], so_gain: float = 1.0):
    """Tucker-2 at 83 + a seed effect, SO ``so_gain`` above it; each control at SO + its offsets, seed by seed."""
    runs = [_run(BASE, s, 83.0 + 0.3 * s) for s in range(3)] + [_run(SO, s, 83.0 + so_gain + 0.3 * s) for s in range(3)]
    for method, deltas in offsets.items():
        runs += [_run(method, s, 83.0 + so_gain + 0.3 * s + d) for s, d in enumerate(deltas)]
    return runs


def test_a_control_above_so_answers_that_the_gain_needs_no_orthogonality_penalty():
    r = _read(_runs({FROB: [1.9, 2.0, 2.1], NODECAY: [-1.0, -1.2, -0.9]}), C, ALL)
    assert [(p.versus.treatment, p.place) for p in r.placed] == [(FROB, "above"), (NODECAY, "below")]
    # Holm over the 3 planned controls (orth-init without runs still counts): the smallest p is tested at 0.05 / 3
    assert max(p.versus.confidence for p in r.placed) == pytest.approx(1 - 0.05 / 3)
    assert "TUCKER2-FROBDECAY: above TUCKER2+SO, +2.00 points (Holm 98.3% CI" in r.lines
    assert "; against TUCKER2 (supported) +3.00 points" in r.lines and "TUCKER2-NODECAY: below TUCKER2+SO" in r.lines
    assert r.answer.startswith("Without the penalty, TUCKER2-FROBDECAY ends above TUCKER2+SO or within ±0.5 points")
    assert "does not need an orthogonality penalty here" in r.answer
    assert r.detectable.startswith("Smallest difference detectable at n = 3")


def test_within_the_band_reaches_so_only_with_a_supported_gain_over_tucker2():
    close = {NODECAY: [0.02, -0.03, 0.01]}
    r = _read(_runs(close), C, [BASE, SO, NODECAY])  # a family of 1
    assert r.placed[0].place == "within" and r.placed[0].reaches
    assert "within ±0.5 points of TUCKER2+SO (Bonferroni 95% CI" in r.lines and r.answer.startswith("Without the penalty")
    # SO itself only 0.3 above Tucker-2 with noise: a control next to SO is not shown to gain anything
    weak = [_run(BASE, s, 83.0 + 0.3 * s + d) for s, d in enumerate([-0.6, 0.4, -0.3])]
    runs = [x for x in _runs(close, so_gain=0.3) if x[0].method != BASE] + weak
    r = _read(runs, C, [BASE, SO, NODECAY])
    assert r.placed[0].place == "within" and r.placed[0].gain.verdict != "supported" and not r.placed[0].reaches
    assert r.answer == (
        "Not resolved yet: TUCKER2-NODECAY is within ±0.5 points of TUCKER2+SO, but its gain over plain Tucker-2 is not supported."
    )


def test_a_control_slightly_but_surely_below_so_is_within_not_below():
    """-0.2 points with a tight interval excludes 0, yet lies inside ±0.5: it reaches SO (the review's case)."""
    r = _read(_runs({FROB: [-0.2, -0.21, -0.19], NODECAY: [-0.15, -0.16, -0.14], ORTH: [-0.1, -0.12, -0.11]}), C, ALL)
    assert all(p.versus.verdict == "contradicted" for p in r.placed)  # Holm excludes 0 downwards...
    assert [p.place for p in r.placed] == ["within"] * 3  # ...but each Bonferroni interval lies inside ±0.5
    assert all(p.band.confidence == pytest.approx(stats.bonferroni(3)) for p in r.placed)
    assert r.answer.startswith("Without the penalty, TUCKER2-FROBDECAY and TUCKER2-NODECAY and TUCKER2+ORTH-INIT end")


def test_every_control_below_so_leaves_the_penalty_only_when_all_planned_have_results():
    below = {FROB: [-1.0, -1.1, -0.9], NODECAY: [-2.0, -2.2, -1.9], ORTH: [-1.5, -1.4, -1.6]}
    complete = _read(_runs(below), C, ALL)
    assert [p.place for p in complete.placed] == ["below"] * 3
    assert complete.answer.startswith("No penalty-free control reaches TUCKER2+SO: every one ends below it")
    del below[ORTH]
    partial = _read(_runs(below), C, ALL)
    assert partial.answer == "Not resolved yet: Tucker-2, U2 orthonormal at init has no paired runs yet."
    # a profile that never trains orth-init does not wait for it
    assert _read(_runs(below), C, [BASE, SO, FROB, NODECAY]).answer.startswith("No penalty-free control")


def test_noisy_missing_or_off_network_controls_are_not_resolved():
    r = _read(_runs({FROB: [2.0, -1.5, 0.4]}), C, [BASE, SO, FROB, NODECAY])
    assert r.placed[0].place == "not resolved" and "undetermined against TUCKER2+SO" in r.lines
    assert r.answer == (
        "Not resolved yet: the interval of TUCKER2-FROBDECAY (+0.30 points) against TUCKER2+SO is too wide to tell whether it ends above it, "
        "within ±0.5 points of it or below it; Tucker-2, no weight decay on its factors has no paired runs yet."
    )
    none = _read([_run(FROB, 0, 85.0)], C, [SO, FROB])  # SO itself has no runs
    assert none.placed == [] and none.lines == "no paired runs yet"
    assert none.detectable.startswith("No detectable effect can be stated yet")
    assert _read(_runs({}), C, [BASE, SO]).answer == "This profile trains no penalty-free control."
    elsewhere = _runs({FROB: [2.0, 2.1, 1.9]})
    for run, _ in elsewhere:
        run.config.model = "resnet56" if run.method == FROB else run.config.model
    assert _read(elsewhere, C, [BASE, SO, FROB]).placed == []  # runs of another network are not read
    no_base = mechanism.reading([x for x in _runs({FROB: [1.9, 2.0, 2.1]}) if x[0].method != BASE], C, [SO, FROB])
    assert no_base.placed[0].gain is None and no_base.placed[0].place == "above" and no_base.placed[0].reaches


def test_the_reading_needs_a_smallest_effect_and_the_profiles_declare_one():
    with pytest.raises(ValueError, match="smallest effect"):
        _read([], Comparison(reference=SO, methods=(FROB,)), [SO, FROB])
    declared = load("cpu-full").comparisons["mechanism"]
    assert declared.reference == SO and declared.smallest_effect == 0.5
    assert set(declared.methods) == {FROB, NODECAY, ORTH}  # the penalty-free controls, never a penalized one
    assert (declared.model, declared.flops_ratio) == (load("cpu-full").comparisons["controls"].model, 2.0)
