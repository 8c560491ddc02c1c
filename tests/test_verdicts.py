"""Verdicts say what the statistics say: effects with intervals and n, words from the intervals."""

from types import SimpleNamespace

import pandas as pd
import pytest

from elrt_core.study import stats, verdicts


def _errors(rows, budget=2.0):
    """rows: (layer, format, rel_error)."""
    return pd.DataFrame([{"layer": l, "format": f, "rel_error": e, "budget": budget} for l, f, e in rows])


def test_format_claim_pairs_formats_layer_by_layer_and_counts_wins():
    rows = []
    for i in range(6):
        rows += [(f"l{i}", "tucker2", 0.10 + 0.01 * i), (f"l{i}", "matrix", 0.20 + 0.012 * i), (f"l{i}", "spatial", 0.05)]
    claim = verdicts.format_claim(_errors(rows), 2.0, "scale", {"tucker2": "Tucker-2"})
    assert "vs matrix: lower in 6 of 6 layers" in claim.effect and "vs spatial: lower in 0 of 6 layers" in claim.effect
    assert claim.verdict == "contradicted"  # beats one opponent, clearly loses to the other
    only_matrix = verdicts.format_claim(_errors(rows), 2.0, "scale", {}, opponents=("matrix",))
    assert only_matrix.verdict == "supported" and "n = 6" in only_matrix.effect


def test_combine():
    assert verdicts.combine(["supported", "supported"]) == "supported"
    assert verdicts.combine(["supported", "inconclusive"]) == "inconclusive"
    assert verdicts.combine(["supported", "contradicted"]) == "contradicted"
    assert verdicts.combine([]) == "inconclusive"


def _run(method, seed, acc, loss=1.0):
    return (SimpleNamespace(method=method, label=method.upper(), config=SimpleNamespace(seed=seed)),
            SimpleNamespace(metrics={"final_test_top1": acc, "final_train_loss": loss}))


def test_values_and_beats_claim_are_paired_and_corrected():
    runs = [_run("elrt", s, 80 + 0.1 * s + 1.0) for s in range(5)] + [_run("a", s, 80 + 0.1 * s) for s in range(5)] \
        + [_run("b", s, 80 + 0.1 * s + 1.0 + 0.01 * (-1) ** s) for s in range(5)]
    values = verdicts.values(runs)
    assert values["a"] == {s: pytest.approx(80 + 0.1 * s) for s in range(5)}
    claim, comparisons = verdicts.beats_claim(values, "elrt", ["a", "b", "missing"], "scale", verdicts.labels(runs))
    assert [c.reference for c in comparisons] == ["a", "b"]
    assert comparisons[0].verdict == "supported" and comparisons[1].verdict == "inconclusive"
    assert claim.verdict == "inconclusive" and "97.5% CI" in claim.effect and claim.effect.startswith("ELRT − each: vs A +1.00")


def test_paired_claim_text():
    c = stats.paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.5, 2: 4.0}, names=("none", "so"))
    claim = verdicts.paired_claim(c, "profile x", {"none": "Tucker-2", "so": "Tucker-2 + SO"})
    assert claim.effect.startswith("Tucker-2 + SO − Tucker-2: +1.17 points (95% CI") and claim.scale == "profile x"
    assert claim.verdict == c.verdict
