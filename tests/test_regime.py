"""The regime of a verdict: underfit diagnostics and effects across training lengths, from records."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from elrt_core import profiles, records
from elrt_core.study import Session, plan, regime, summary, tables, verdicts
from elrt_core.study.stats import paired


def _record(root, profile, run, acc, *, loss=0.3, train=90.0, orth=None):
    epochs = run.config.epochs  # a finished record holds one history row per epoch
    history = [
        {"epoch": e + 1, "train_loss": loss + 0.1 * (epochs - e - 1), "train_top1": train, "test_top1": acc, "val_top1": acc}
        for e in range(epochs)
    ]
    if orth is not None:
        history[-1]["orthogonality"] = orth
    data = records.build(
        run.config,
        status="finished",
        history=history,
        sizes={"train_images": 1, "val_images": 1, "test_images": 1},
        cost={},
        provenance={},
    )
    data["metrics"]["best_val_epoch"] = epochs
    records.write_json(root / profile / run.config.name / "record.json", data)


def test_steps_count_the_optimizer_steps_of_a_run():
    assert regime.steps(profiles.load("cpu-full")) == 45_000 // 128 * 15
    assert regime.steps(profiles.load("cpu-full-30")) == 2 * regime.steps(profiles.load("cpu-full"))
    assert regime.steps(profiles.load("cpu-quick")) == 10_000 // 128 * 15


def test_underfit_diagnostics_come_from_the_histories():
    def run(method, seed, test, loss, best_last):
        rec = SimpleNamespace(
            history=[
                {"train_loss": loss + 1, "train_top1": 50.0, "test_top1": 40.0},
                {"train_loss": loss, "train_top1": test + 3, "test_top1": test},
            ],
            metrics={"best_val_epoch": 2 if best_last else 1},
        )
        return SimpleNamespace(method=method, label=method.upper(), config=SimpleNamespace(seed=seed, epochs=2)), rec

    runs = [
        run("a", 0, 80.0, 0.3, True),
        run("a", 1, 81.0, 0.3, True),
        run("b", 0, 78.0, 0.4, True),
        run("c", 0, 75.0, 0.5, False),
    ]
    d = regime.underfit(runs)
    assert d.table["n"].tolist() == [2, 1, 1] and d.table["test_top1"].tolist() == [80.5, 78.0, 75.0]
    assert (d.best_last, d.with_val, d.runs) == (3, 4, 4)
    assert d.spearman == pytest.approx(-1.0)  # lower training loss, higher test accuracy, for every method
    assert "3 of 4 runs reach their best validation top-1 in their last epoch" in d.text()
    assert "may measure how fast each method fits" in d.text() and "is not tested here" in d.text()
    converged = regime.underfit([run("a", 0, 80.0, 0.3, False), run("b", 0, 78.0, 0.4, False), run("c", 0, 79.0, 0.5, False)])
    assert "how fast" not in converged.text()  # no claim of underfitting when the runs say otherwise
    assert math.isnan(regime.underfit(runs[:2]).spearman)  # one method: no rank correlation
    assert "The networks are still fitting their training data" in d.text()
    for run_, _ in runs:
        run_.config.schedule = "onecycle"  # the learning rate ends near zero: a best last epoch is expected anyway
    annealed = regime.underfit(runs)
    assert annealed.anneals and "(expected under a schedule that anneals the learning rate to about zero" in annealed.text()
    assert (
        "still fitting" not in annealed.text()
        and "At 2 epochs the test ranking follows the training-loss ranking" in annealed.text()
    )


def test_trend_pairs_each_effect_within_each_profile_of_the_axis(tmp_path):
    axis = profiles.regime()
    assert axis.profiles == ("cpu-quick", "cpu-full", "cpu-full-30", "cpu-full-60") and ("tucker2+so", "tucker2") in axis.effects
    full = plan.comparison(profiles.load("cpu-full"), "orthogonality")  # tucker2 s0-4, tucker2+so s0-4
    for run in full:
        _record(tmp_path, "cpu-full", run, 80.0 + (run.method == "tucker2+so") * (0.5 + 0.1 * run.config.seed))
    s = Session("cpu-full", str(tmp_path), train_missing=False, notebook="07_training_length")
    table = regime.trend(s, effects=[("tucker2+so", "tucker2")])
    rows = {r.profile: r for r in table.itertuples()}
    assert rows["cpu-full"].n == 5 and rows["cpu-full"].mean == pytest.approx(0.7)
    assert rows["cpu-quick"].n == 0 and rows["cpu-quick"].verdict == "no runs yet"
    assert regime.trained(table) == ["cpu-full"]  # the profiles with runs, which the paper profile is set against
    assert table["steps"].tolist() == sorted(table["steps"])  # the axis in order of training length
    sentence = regime.trend_sentence(table, regime.effect_label("tucker2+so", "tucker2"))
    assert sentence.endswith(
        ": +0.70 (95% CI +0.50 to +0.90, supported) at cpu-full (5,265 steps, n = 5) "
        "(no runs yet at cpu-quick, cpu-full-30, cpu-full-60)"
    )
    # a profile that does not plan an effect has no row, so nothing says it is still to be trained
    gap = regime.trend(s, effects=[("dense", "tucker2")])
    assert "cpu-full-60" not in set(gap["profile"]) and "cpu-full-30" in set(gap["profile"])
    assert regime.trend_sentence(gap, regime.effect_label("dense", "tucker2")).endswith(
        ": no runs yet at cpu-quick, cpu-full, cpu-full-30"
    )
    label = regime.effect_label("tucker2+so", "tucker2")
    assert regime.stability(table, label) == "runs at one profile only: no trend yet"
    with pytest.raises(ValueError, match="not on the regime axis"):
        regime.trend(s, effects=[("cp", "dense")])
    assert "cpu-full-30" in s.borrowed  # the chapter names the command that trains what it reads elsewhere


def test_the_summary_sentences_follow_the_numbers():
    def run(method, seed, acc):
        return SimpleNamespace(method=method, label=method, config=SimpleNamespace(seed=seed)), SimpleNamespace(
            metrics={"final_test_top1": acc}
        )

    runs = (
        [run("dense", s, 88.0) for s in range(2)] + [run("t", s, 84.0) for s in range(2)] + [run("m", s, 85.0) for s in range(2)]
    )
    runs += [run("e", s, 86.0 + s) for s in range(2)]
    vs = paired({0: 85.0, 1: 85.0}, {0: 86.0, 1: 87.0}, names=("m", "e"), smallest=0.5)
    text = summary.accuracy_sentences(runs, {"t": "T"}, reference="dense", headline="e", formats=["t", "m"], headline_vs=[vs])
    assert (
        text[0]
        == "The dense network reaches 88.00% test top-1 (n = 2); every low-rank network of this budget ends 1.5 to 4.0 points below it (84.00 to 86.50%)."
    )
    assert text[1] == "Trained without a regularizer, T ends lowest of the 2 formats (84.00%) and m highest (85.00%)."
    assert text[2].startswith(
        "e ends at 86.50% (n = 2), above all of them (the other formats: 84.00 to 85.00%): against m +1.50 points,"
    )


def test_the_validation_split_chooses_and_the_test_set_only_reports():
    def run(method, seed, val, test):
        return SimpleNamespace(method=method, label=method, config=SimpleNamespace(seed=seed)), SimpleNamespace(
            metrics={"final_val_top1": val, "final_test_top1": test}
        )

    so, weak, strong = "tucker2+so", "tucker2+so/4", "tucker2+so*4"  # the rule's λ, λ/4, 4λ
    runs = [run(so, s, 85.0, 84.0) for s in range(2)] + [run(weak, s, 86.0, 83.0) for s in range(2)]
    runs += [run(strong, 0, 84.0, 90.0)]
    text = verdicts.chosen_on_validation(runs, [so, weak, strong], {weak: "λ/4"})
    assert "over the 1 seed every candidate has (seed 0), the mean final validation top-1 chooses λ/4: 86.00%" in text.lower()
    assert text.endswith(
        "its test top-1 over the same seeds is 83.00%. It is the smallest strength tried, so the best may lie below it."
    )
    assert verdicts.chosen_on_validation(runs, [so, "x"], {}).startswith("No choice yet: x without finished runs")
    no_val = [(r, SimpleNamespace(metrics={"final_test_top1": 1.0})) for r, _ in runs]
    assert "no validation split" in verdicts.chosen_on_validation(no_val, [so, weak], {})
    # set against no regularizer on the same seeds: the chosen strength and the rule's, each with its own word
    plain = [run("none", s, 80.0, test) for s, test in ((0, 82.0), (1, 82.5), (2, 99.0))]  # seed 2: not a candidate's
    check = paired({0: 84.0, 1: 84.0}, {0: 83.0, 1: 83.0}, names=(so, weak))  # the λ check's own comparison
    two = verdicts.chosen_on_validation(
        runs[:4], [so, weak], {so: "λ", weak: "λ/4"}, against=("none", plain), smallest=0.5, direct=[check]
    )
    assert "(seeds 0, 1)" in two and " Against λ directly: -1.00 points (n = 2, every difference equal" in two
    assert two.endswith(
        "Against none on seeds 0, 1 (test top-1, unadjusted): λ/4 (chosen) +0.75 points (95% CI -2.43 to +3.93, n = 2, "
        "sign-flip p = 0.5, its floor at n = 2), inconclusive; λ +1.75 points (95% CI -1.43 to +4.93, n = 2, sign-flip p = 0.5, "
        "its floor at n = 2), inconclusive. The chosen strength's interval does not allow for the choice among these "
        "candidates on the same seeds, so it flatters."
    )
    rule_wins = [run(so, s, 87.0, 84.0) for s in range(2)] + runs[2:4] + [run(strong, s, 80.0, 90.0) for s in range(2)]
    kept = verdicts.chosen_on_validation(rule_wins, [so, weak, strong], {so: "λ"}, against=("none", plain), smallest=0.5)
    # validation keeps the rule's λ: one line against no regularizer, no caveat
    assert "chooses λ: 87.00%" in kept and kept.endswith(
        "λ (chosen) +1.75 points (95% CI -1.43 to +4.93, n = 2, sign-flip p = 0.5, its floor at n = 2), inconclusive."
    )
    assert "largest strength" not in kept and "smallest strength" not in kept  # λ lies inside the grid tried
    assert verdicts.chosen_on_validation(runs[:4], [so, weak], {}, against=("none", [])).endswith(
        "none has no run at these seeds to set it against."
    )


def test_the_orthogonality_table_reads_what_runs_logged(tmp_path):
    runs = plan.comparison(profiles.load("cpu-full"), "orthogonality")
    logged = {"U2": {"so_per_rank": 9.0, "sq_norm": 0.5, "layers": 18, "so": 1.0, "srip": 1.0, "mc": 1.0}}
    _record(tmp_path, "cpu-full", runs[0], 80.0, orth=logged)
    _record(tmp_path, "cpu-full", runs[5], 80.0)  # an older record: nothing logged, left out
    found = Session("cpu-full", str(tmp_path), train_missing=False).runs([runs[0], runs[5]])
    table = tables.orthogonality(found + found)  # two comparisons' runs joined: each run counts once
    assert table["method"].tolist() == ["tucker2"] and table["n"].tolist() == [1]
    assert table["so_rank_U2"].tolist() == [0.5] and table["sq_norm_U2"].tolist() == [0.5]
    assert len(tables.orthogonality(found[1:])) == 0


def test_stability_tells_a_flip_from_estimates_of_opposite_sign_and_movement_reads_the_same_data():
    nan = math.nan
    table = pd.DataFrame(
        [
            {"effect": "e", "profile": "cpu-quick", "steps": 1, "n": 1, "mean": 1.4, "low": nan, "high": nan},
            {"effect": "e", "profile": "cpu-full", "steps": 2, "n": 3, "mean": -1.5, "low": -2.3, "high": -0.7},
            {"effect": "e", "profile": "cpu-full-30", "steps": 4, "n": 0, "mean": nan, "low": nan, "high": nan},
            {"effect": "f", "profile": "cpu-quick", "steps": 1, "n": 3, "mean": 1.8, "low": 0.1, "high": 3.5},
            {"effect": "f", "profile": "cpu-full", "steps": 2, "n": 5, "mean": 0.58, "low": 0.2, "high": 0.9},
            {"effect": "f", "profile": "cpu-full-30", "steps": 4, "n": 3, "mean": 1.0, "low": 0.6, "high": 1.4},
            {"effect": "g", "profile": "cpu-quick", "steps": 1, "n": 3, "mean": 1.0, "low": 0.5, "high": 1.5},
            {"effect": "g", "profile": "cpu-full", "steps": 2, "n": 3, "mean": -1.0, "low": -1.5, "high": -0.5},
            {"effect": "g", "profile": "cpu-full-30", "steps": 4, "n": 2, "mean": -0.4, "low": -3.0, "high": 2.0},
        ]
    )
    assert regime.stability(table, "e") == (
        "the estimates differ in sign (+ at cpu-quick, n = 1; − at cpu-full, n = 3), but no intervals establish opposite signs"
    )
    assert regime.stability(table, "f") == "one sign at every profile with runs (cpu-quick, cpu-full, cpu-full-30)"
    assert regime.stability(table, "g") == (
        "the sign flips between profiles (intervals excluding 0: + at cpu-quick, − at cpu-full): a verdict on it is bound to its profile"
    )
    assert regime.movement(table, "e") == ""  # cpu-full-30 has no runs of it
    assert regime.movement(table, "f") == (  # the intervals +0.2..+0.9 and +0.6..+1.4 overlap
        "from cpu-full to cpu-full-30 (same data, 2x the steps) it grows in its estimate, from +0.58 to +1.00 points: "
        "the intervals overlap, so the change is not established; no sign that the effect is one of training speed alone"
    )
    apart = table.assign(
        low=table["low"].where(table["profile"] != "cpu-full-30", 1.1),
        high=table["high"].where(table["profile"] != "cpu-full-30", 1.5),
    )
    assert regime.movement(apart, "f").endswith("it grows, from +0.58 to +1.00 points: not an effect of training speed alone")
    assert "it shrinks in its estimate, from -1.00 to -0.40 points: the intervals overlap" in regime.movement(table, "g")
    # a fourth, longer profile adds a step; the cpu-full -> cpu-full-30 reading stays
    longer = pd.concat(
        [
            table,
            pd.DataFrame([{"effect": "f", "profile": "cpu-full-60", "steps": 8, "n": 2, "mean": 1.2, "low": -5.0, "high": 7.0}]),
        ]
    )
    steps = regime.movement(longer, "f").split("; from ")
    assert steps[0].startswith("from cpu-full to cpu-full-30 (same data, 2x the steps)") and len(steps) == 2
    assert steps[1].startswith("cpu-full-30 to cpu-full-60 (same data, 2x the steps) it grows in its estimate")


def test_the_axis_says_what_separates_its_profiles_besides_length():
    text = regime.axis_text()
    assert text.startswith("cpu-quick (1,170 steps: 15 epochs of a 10,000-image training subset), cpu-full (5,265 steps")
    assert "cpu-full, cpu-full-30 and cpu-full-60 differ only in epochs" in text
    # not 'the same data', as the book once said
    assert "cpu-quick also differs: a 10,000-image training subset and no validation split" in text
    assert regime.untested_text(["cpu-quick", "cpu-full", "cpu-full-30"]) == (
        "any schedule longer than 30 epochs (cpu-full-30, the longest profile with runs)"
    )
    assert regime.untested_text([]).startswith("any training schedule")
    assert regime.full_training_text([]).endswith(
        "takes 70,200 optimizer steps; no profile of the regime axis has paired runs yet."
    )
    full = regime.full_training_text(trained=["cpu-quick", "cpu-full", "cpu-full-30"])  # what has runs
    assert "takes 70,200 optimizer steps, 6.7 times the longest profile trained here (cpu-full-30, 10,530)" in full
    assert full.endswith(
        "it also differs from cpu-full-30 in the cosine schedule and weight decay 0.0001, so it tests more than length."
    )


def test_a_chapter_note_labels_its_verdict_with_its_regime_and_trains_nothing(tmp_path, monkeypatch):
    runs = plan.comparison(profiles.load("cpu-full"), "orthogonality")
    for run in runs:
        _record(tmp_path, "cpu-full", run, 80.0 + (run.method == "tucker2+so") * (0.5 + 0.1 * run.config.seed))
    from elrt_core.study import session as session_module

    def no_training(*args, **kwargs):
        raise AssertionError("a chapter note must not train")

    monkeypatch.setattr(session_module, "get_or_run", no_training)
    s = Session("cpu-full", str(tmp_path), train_missing=True, notebook="02_orthogonality_on_off")
    note = regime.chapter_note(s, [("tucker2+so", "tucker2")])
    assert note.startswith("This verdict is made at profile 'cpu-full': 15 epochs")
    assert "*How far its networks (resnet20, 2x fewer FLOPs) trained:* After 15 epochs" in note
    assert "10 of 10 runs reach their best validation top-1 in their last epoch" in note
    assert "cpu-full, cpu-full-30 and cpu-full-60 differ only in epochs" in note
    assert "\n- Tucker-2 + SO (U2) − Tucker-2: +0.70 (95% CI" in note
    assert note.endswith("runs at one profile only: no trend yet.")
    assert s.missing == []  # the note reads; it does not count the chapter's missing runs
    one = s.runs([runs[0]])  # a chapter that analyses one network diagnoses that network
    own = regime.chapter_note(s, subject="The comparison", diagnose=one)
    assert own.startswith("The comparison is made at profile 'cpu-full'")
    assert (
        "*How far the networks this chapter analyses trained:* After 15 epochs the final training cross-entropy of Tucker-2 is"
        in own
    )


def test_the_same_method_trained_longer_on_the_same_data(tmp_path):
    short = plan.comparison(profiles.load("cpu-full"), "orthogonality")
    for run in short:
        _record(tmp_path, "cpu-full", run, 83.0 + (run.method == "tucker2+so"), loss=0.4)
    long_ = [r for r in plan.plan(profiles.load("cpu-full-30")) if r.method == "tucker2"]
    for run in long_:
        _record(tmp_path, "cpu-full-30", run, 86.0, loss=0.3)
    _record(tmp_path, "cpu-quick", plan.plan(profiles.load("cpu-quick"))[0], 70.0)  # another data set: never compared
    s = Session("cpu-full", str(tmp_path), train_missing=False, notebook="07_training_length")
    table = regime.longer(s)
    assert table[["method", "profile", "n"]].values.tolist() == [
        ["tucker2", "cpu-full", 5],
        ["tucker2", "cpu-full-30", len(long_)],
    ]
    text = regime.longer_text(table)
    assert text.startswith(
        "Trained longer on the same data: Tucker-2: training cross-entropy 0.40 → 0.30, test top-1 83.00% → 86.00%"
    )
    assert text.endswith("the shorter profile stops these networks before they converge.")
    worse = table.assign(test_top1=[86.0, 83.0])
    assert "converge" not in regime.longer_text(worse)
    assert regime.longer_text(table.iloc[:0]).startswith("No method has finished runs at two training lengths")


def test_orthogonality_across_the_axis_reads_each_profile_that_logged_it(tmp_path):
    logged = {"U2": {"so_per_rank": 9.0, "sq_norm": 0.5, "layers": 18, "so": 1.0, "srip": 1.0, "mc": 1.0}}
    for run in plan.comparison(profiles.load("cpu-full"), "orthogonality"):
        _record(tmp_path, "cpu-full", run, 80.0)  # made before the logging: nothing to read
    longer_runs = plan.comparison(profiles.load("cpu-full-30"), "orthogonality")
    for run in longer_runs:
        _record(tmp_path, "cpu-full-30", run, 85.0, orth=logged)
    s = Session("cpu-full", str(tmp_path), train_missing=False, notebook="02_orthogonality_on_off")
    table = regime.orthogonality(s)
    assert set(table["profile"]) == {"cpu-full-30"} and table["method"].tolist() == ["tucker2", "tucker2+so"]
    assert table["so_rank_U2"].tolist() == [0.5, 0.5] and table["n"].sum() == len(longer_runs)
    assert "cpu-full-30" in s.borrowed  # the chapter names the command that trains those runs
    empty = regime.orthogonality(Session("cpu-full", str(tmp_path / "none"), train_missing=False))
    assert len(empty) == 0 and "profile" in empty.columns


def test_the_orthogonality_reached_is_read_in_words_per_profile():
    table = pd.DataFrame(
        [
            {
                "profile": "long",
                "method": "t",
                "label": "T",
                "n": 3,
                "so_rank_U2": 0.5,
                "sq_norm_U2": 0.5,
                "so_rank_U1": 0.6,
                "sq_norm_U1": 0.4,
            },
            {
                "profile": "long",
                "method": "so",
                "label": "SO",
                "n": 2,
                "so_rank_U2": 0.2,
                "sq_norm_U2": 0.6,
                "so_rank_U1": 0.6,
                "sq_norm_U1": 0.4,
            },
            {
                "profile": "short",
                "method": "so",
                "label": "SO",
                "n": 1,
                "so_rank_U2": 0.1,
                "sq_norm_U2": 0.9,
                "so_rank_U1": 0.5,
                "sq_norm_U1": 0.5,
            },
        ]
    )
    text = regime.orthogonality_text(table, "t", "so")
    assert text.startswith("At long (n = 3 and 2), from T to SO: U2 SO / rank 0.500 → 0.200, mean squared norm 0.500 → 0.600; U1")
    assert "short" not in text  # one method only there: nothing to compare
    assert regime.orthogonality_text(table[table["profile"] == "short"], "t", "so").startswith("No profile has runs of both")
