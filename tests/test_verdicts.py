"""Verdict sentences: they must say what the data say (counts, signs, seeds, noise)."""

from types import SimpleNamespace

import pandas as pd
import pytest

from elrt_core.study import verdicts


def _errors(rows):
    """rows: (layer, format, rel_error) at ratio 2."""
    return pd.DataFrame([{"layer": l, "format": f, "rel_error": e, "ratio": 2.0} for l, f, e in rows])


def test_format_verdict_counts_wins_per_opponent():
    df = _errors([
        ("a", "tucker2", 0.1), ("a", "matrix", 0.2), ("a", "spatial", 0.05),
        ("b", "tucker2", 0.1), ("b", "matrix", 0.3), ("b", "spatial", 0.2),
        ("c", "tucker2", 0.5), ("c", "matrix", 0.4), ("c", "spatial", 0.3),
    ])
    assert verdicts.format_wins(df) == (1, 3)  # lower than both only in layer b
    sentence = verdicts.format_verdict(df, 2.0)
    assert "than matrix rank, channel reshape in 2 of 3 layers" in sentence
    assert "than matrix rank, spatial reshape in 1 of 3 layers" in sentence
    assert "Tucker-2 (tensor rank) 0.233" in sentence


def _run(method, seed, acc, history=()):
    return (SimpleNamespace(method=method, config=SimpleNamespace(seed=seed)),
            SimpleNamespace(metrics={"final_test_top1": acc}, history=list(history)))


def test_on_off_pairs_seeds_and_reports_the_spread():
    runs = [_run("none", 0, 70.0), _run("SO on U2", 0, 72.0), _run("none", 1, 69.0), _run("SO on U2", 1, 68.5)]
    history = pd.DataFrame([{"method": m, "epoch": 3, "train_loss": l} for m, l in (("none", 0.8), ("SO on U2", 0.7))])
    accuracy, loss = verdicts.on_off(runs, history)
    assert "SO on U2: 70.25% vs without regularizer: 69.50%" in accuracy and "+0.75 points, higher" in accuracy
    assert "higher in 1 of 2 seeds (+2.00, -0.50 points)" in accuracy
    assert "seed-to-seed range is up to 3.50 points" in accuracy
    assert loss == "Final training loss: SO on U2 0.7000 vs none 0.8000."


def test_seed_range():
    assert verdicts.seed_range([_run("none", 0, 70.0)]) is None
    assert verdicts.seed_range([_run("a", 0, 70.0), _run("a", 1, 71.5), _run("b", 0, 60.0), _run("b", 1, 60.5)]) == pytest.approx(1.5)


def _summary(pairs, seeds=1):
    return pd.DataFrame([{"method": m, "final_top1": a, "seeds": seeds} for m, a in pairs])


def test_best_regularizer_states_lead_and_whether_noise_resolves_it():
    summary = _summary([("none", 69.0), ("SO on U2", 71.6), ("DSO on U2", 71.8), ("MC on U2", 70.0)])
    text = verdicts.best_regularizer(summary)
    assert text.startswith("The best regularizer is DSO on U2 with 71.80%")
    assert "+2.80 points over no regularizer" in text and "0.20 points ahead of SO on U2" in text
    assert "not resolved" in verdicts.best_regularizer(summary, noise=2.6)
    assert "stands" in verdicts.best_regularizer(summary, noise=0.1)


def test_main_results_compares_elrt_with_dense():
    summary = pd.DataFrame([
        {"model": "resnet20", "method": "dense", "target_reduction": 1.0, "final_top1": 75.0},
        {"model": "resnet20", "method": "ELRT (Tucker-2 + SO on U2)", "target_reduction": 2.0, "final_top1": 72.0},
        {"model": "resnet20", "method": "matrix, no regularizer", "target_reduction": 2.0, "final_top1": 73.0},
    ])
    text = verdicts.main_results(summary)
    assert "the best low-rank method is matrix, no regularizer (73.00%)" in text
    assert "ELRT 72.00% vs dense 75.00% (-3.00 points)" in text
