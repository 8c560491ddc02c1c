"""Verdicts say what the statistics say: effects with intervals and n, words from the intervals."""

from types import SimpleNamespace

import pandas as pd
import pytest

from elrt_core.lowrank.convert import format_class
from elrt_core.profiles import Comparison, methods
from elrt_core.study import stats, verdicts


def _errors(rows, budget=2.0):
    """rows: (layer, format, rel_error)."""
    return pd.DataFrame([{"layer": l, "format": f, "rel_error": e, "budget": budget} for l, f, e in rows])


def test_format_claim_pairs_formats_layer_by_layer_and_counts_wins():
    rows = []
    for i in range(6):
        rows += [(f"l{i}", "tucker2", 0.10 + 0.01 * i), (f"l{i}", "matrix", 0.20 + 0.012 * i), (f"l{i}", "spatial", 0.05)]
    claim = verdicts.format_claim(_errors(rows), 2.0, "scale", {"tucker2": "Tucker-2"})
    assert "vs matrix (supported): lower in 6 of 6 layers" in claim.effect
    assert "; beyond the paper: vs spatial (contradicted): lower in 0 of 6 layers" in claim.effect
    # the paper's opponent decides the row; the spatial reshape, which the book added, has its own word only
    assert claim.verdict == "supported"
    assert "Holm 97.5% CI" in claim.effect and "Holm 95% CI" in claim.effect  # step-down over the two opponents
    both = verdicts.format_claim(_errors(rows), 2.0, "scale", {}, beyond=())
    assert both.verdict == "contradicted"  # with both opponents the paper's, losing to one contradicts the row
    only_matrix = verdicts.format_claim(_errors(rows), 2.0, "scale", {}, opponents=("matrix",))
    assert only_matrix.verdict == "supported" and "n = 6" in only_matrix.effect and "Holm" not in only_matrix.effect
    assert only_matrix.detectable.startswith("Smallest difference detectable at n = 6 with 80% power: 0.00")
    tiny = [(f"l{i}", f, e + 0.001 * (i % 2) * (f == "matrix")) for i in range(6) for f, e in (("tucker2", 0.1), ("matrix", 0.1))]
    null = verdicts.format_claim(_errors(tiny), 2.0, "scale", {}, opponents=("matrix",), smallest=0.01)
    assert null.verdict == "no meaningful effect"  # the interval lies inside +-0.01: a null, not too little data


def test_crossovers_name_the_budget_from_which_a_format_wins_most_layers():
    rows = []
    for budget, wins in ((1.25, 0), (1.5, 1), (2.0, 2), (3.0, 3)):
        for i in range(3):
            rows += [
                ("trained", "macs", budget, f"l{i}", "tucker2", 0.1),
                ("trained", "macs", budget, f"l{i}", "matrix", 0.2 if i < wins else 0.05),
            ]
            rows += [("trained", "macs", budget, f"l{i}", "spatial", 0.05)]
    rows += [("initialization", "macs", 2.0, "l0", "tucker2", 0.1), ("initialization", "macs", 2.0, "l0", "matrix", 0.2)]
    text = verdicts.crossovers(_budgets(rows), weights="trained")
    assert text["matrix"] == "0 of 3 at 1.25x · 1 of 3 at 1.5x · 2 of 3 at 2x · 3 of 3 at 3x: a majority from 2x fewer MACs on"
    assert text["spatial"].endswith("no budget from which Tucker-2 (tensor rank) wins most layers")


def test_layer_values_refuses_a_table_of_two_kinds_of_weights():
    rows = [(f"l{i}", f, 0.1) for i in range(2) for f in ("tucker2", "matrix")]
    both = pd.concat([_errors(rows).assign(weights="trained"), _errors(rows).assign(weights="initialization")])
    with pytest.raises(ValueError, match="one kind of weights"):
        verdicts.layer_values(both, 2.0)


def test_format_claim_reads_labels_from_the_format_classes_and_names_the_budget_kind():
    rows = [(f"l{i}", f, e) for i in range(3) for f, e in (("tucker2", 0.1), ("matrix", 0.2))]
    macs = _errors(rows).assign(by="macs")
    params = _errors([(layer, f, 0.3 - e) for layer, f, e in rows]).assign(by="params")
    claim = verdicts.format_claim(pd.concat([macs, params]), 2.0, "scale", opponents=("matrix",), by="params")
    assert claim.effect.startswith("Tucker-2 (tensor rank) at 2x fewer parameters per layer, relative error of each other")
    # the sign convention is stated: matrix's error (0.1) minus Tucker-2's (0.2) is negative
    assert (
        "(positive: Tucker-2 (tensor rank) has the lower error): vs matrix rank, channel reshape (inconclusive): lower in 0 of 3 "
        "layers, mean -0.100 (n = 3, every difference equal: no interval" in claim.effect
    )


def _budgets(rows):
    """rows: (weights, by, budget, layer, format, rel_error)."""
    return pd.DataFrame([dict(zip(["weights", "by", "budget", "layer", "format", "rel_error"], r)) for r in rows])


def test_win_counts_per_opponent_budget_and_weights():
    df = _budgets(
        [
            ("trained", "macs", 2.0, "a", "tucker2", 0.1),
            ("trained", "macs", 2.0, "a", "matrix", 0.2),
            ("trained", "macs", 2.0, "a", "spatial", 0.1),
            ("trained", "macs", 2.0, "b", "tucker2", 0.3),
            ("trained", "macs", 2.0, "b", "matrix", 0.2),
            ("trained", "macs", 2.0, "b", "spatial", 0.4),
            ("trained", "macs", 4.0, "a", "tucker2", 0.5),
            ("trained", "macs", 4.0, "a", "spatial", 0.6),
            ("trained", "macs", 4.0, "b", "tucker2", 0.5),
            ("trained", "macs", 4.0, "b", "spatial", 0.6),
            ("random", "params", 2.0, "a", "tucker2", 0.7),
            ("random", "params", 2.0, "a", "matrix", 0.6),
        ]
    )
    counts = verdicts.win_counts(df)
    assert list(counts.columns) == ["weights", "by", "budget", "opponent", "wins", "losses", "ties", "layers"]
    got = {(r.weights, r.by, r.budget, r.opponent): (r.wins, r.losses, r.ties, r.layers) for r in counts.itertuples()}
    assert got == {
        ("trained", "macs", 2.0, "matrix"): (1, 1, 0, 2),
        ("trained", "macs", 2.0, "spatial"): (1, 0, 1, 2),
        ("trained", "macs", 4.0, "matrix"): (0, 0, 0, 0),  # no matrix row within 4x: nothing compared
        ("trained", "macs", 4.0, "spatial"): (2, 0, 0, 2),
        ("random", "params", 2.0, "matrix"): (0, 1, 0, 1),
        ("random", "params", 2.0, "spatial"): (0, 0, 0, 0),
    }
    assert list(counts["weights"].unique()) == ["trained", "random"]  # in the order of the rows
    wide = verdicts.win_table(df.replace({"matrix": "cp"}), budgets=[2.0])  # CP as a second labelled format
    label = {f: format_class(f).label for f in ("tucker2", "cp", "spatial")}
    assert list(wide.columns) == [
        "weights",
        "per-layer budget",
        f"{label['tucker2']} lower than {label['cp']}",
        f"{label['tucker2']} lower than {label['spatial']}",
    ]
    assert wide.values.tolist() == [
        ["trained", "2× fewer MACs", "1 of 2", "1 of 2 (1 tied)"],
        ["random", "2× fewer parameters", "0 of 1", "0 of 0"],
    ]
    only = verdicts.win_counts(df, fmt="spatial", against=["tucker2"])
    assert only[only["budget"] == 4.0][["wins", "losses"]].values.tolist() == [[0, 2]]
    with pytest.raises(ValueError):  # one row per comparison, layer and format
        verdicts.win_counts(pd.concat([df, df.head(1)]))
    with pytest.raises(ValueError, match="budget"):
        verdicts.win_counts(df.drop(columns="budget"))


def test_combine():
    assert verdicts.combine(["supported", "supported"]) == "supported"
    assert verdicts.combine(["supported", "inconclusive"]) == "inconclusive"
    assert verdicts.combine(["supported", "contradicted"]) == "contradicted"
    assert verdicts.combine(["no meaningful effect"] * 2) == "no meaningful effect"
    assert verdicts.combine(["no meaningful effect", "supported"]) == "inconclusive"
    assert verdicts.combine([]) == "inconclusive"


def _run(method, seed, acc, loss=1.0):
    return (
        SimpleNamespace(method=method, label=method.upper(), config=SimpleNamespace(seed=seed)),
        SimpleNamespace(metrics={"final_test_top1": acc, "final_train_loss": loss}),
    )


def test_values_and_beats_claim_are_paired_and_corrected():
    runs = (
        [_run("elrt", s, 80 + 0.1 * s + 1.0 + 0.02 * (s % 2) - 0.01) for s in range(5)]
        + [_run("a", s, 80 + 0.1 * s) for s in range(5)]
        + [_run("b", s, 80 + 0.1 * s + 1.0 + 0.01 * (-1) ** s) for s in range(5)]
    )
    values = verdicts.values(runs)
    assert values["a"] == {s: pytest.approx(80 + 0.1 * s) for s in range(5)}
    claim, comparisons = verdicts.beats_claim(values, "elrt", ["a", "b", "missing"], "scale", verdicts.labels(runs))
    assert [c.reference for c in comparisons] == ["a", "b"]
    assert comparisons[0].verdict == "supported" and comparisons[1].verdict == "inconclusive"
    assert claim.verdict == "inconclusive" and "Holm 98.3% CI" in claim.effect
    assert claim.effect.startswith("ELRT − each: vs A (supported) +1.00")
    assert claim.effect.endswith("(mean below the opponent's for 1 of 2: B); without results so far: missing")
    # Holm over the planned family of 3: the smallest p at 0.05/3, the next at 0.05/2 (where it stops)
    assert [c.confidence for c in comparisons] == [pytest.approx(1 - 0.05 / 3), pytest.approx(1 - 0.05 / 2)]
    two, _ = verdicts.beats_claim(values, "elrt", ["a", "x, y", "z"], "scale", verdicts.labels(runs))
    assert two.effect.endswith("; without results so far: x, y · z")  # labels may hold commas
    alone, _ = verdicts.beats_claim(values, "elrt", ["a"], "scale", verdicts.labels(runs))
    assert alone.verdict == "supported" and "without results" not in alone.effect
    partial, _ = verdicts.beats_claim(values, "elrt", ["a", "missing"], "scale", verdicts.labels(runs))
    assert partial.verdict == "inconclusive"  # beats A beyond the noise, but "each" includes an untrained method
    # an opponent the paper does not compare with gets its own line and word, and cannot decide the row
    ours, _ = verdicts.beats_claim(values, "elrt", ["a", "b", "missing"], "scale", verdicts.labels(runs), beyond=["b", "missing"])
    assert ours.verdict == "supported" and "; beyond the paper: vs B (inconclusive)" in ours.effect
    null, _ = verdicts.beats_claim(values, "elrt", ["b"], "scale", verdicts.labels(runs), smallest=0.5)
    assert null.verdict == "no meaningful effect"  # ELRT − B lies within +-0.5: told apart from too little data


def test_paired_claim_text():
    c = stats.paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.5, 2: 4.0}, names=("none", "so"))
    claim = verdicts.paired_claim(c, "profile x", {"none": "Tucker-2", "so": "Tucker-2 + SO"})
    assert claim.effect.startswith("Tucker-2 + SO − Tucker-2: +1.17 points (95% CI") and claim.scale == "profile x"
    assert claim.verdict == c.verdict


def test_labels_name_methods_that_have_no_run_yet():
    run = SimpleNamespace(method="tucker2", label="Tucker-2, as planned")
    names = verdicts.labels([(run, None)])
    assert list(names)[0] == "tucker2" and names["tucker2"] == "Tucker-2, as planned"
    assert names["tucker2+so"] != "tucker2+so" and "SO" in names["tucker2+so"]  # no run: the study's label


def test_two_way_pairs_the_treatment_with_the_reference_in_the_claimed_direction():
    c = Comparison(reference="a", methods=("a", "b"), treatment="b")
    runs = [_run("a", s, 80.0 + s, loss=1.0 + 0.01 * s) for s in range(4)]
    runs += [_run("b", s, 81.0 + s + 0.1 * (s - 1), loss=0.9 + 0.02 * s) for s in range(3)]  # differences +0.9, +1.0, +1.1
    accuracy = verdicts.two_way(runs, c)
    assert (accuracy.n, accuracy.mean, accuracy.verdict) == (3, pytest.approx(1.0), "supported")
    loss = verdicts.two_way(runs, c, "final_train_loss", direction=-1)
    assert loss.mean == pytest.approx(-0.09) and loss.verdict == "supported"  # lower loss, as claimed
    assert verdicts.two_way(runs, c, "final_train_loss").verdict == "contradicted"  # claimed higher
    assert verdicts.two_way(runs[:4], c).n == 0
    with pytest.raises(ValueError, match="needs a treatment"):
        verdicts.two_way(runs, Comparison(reference="a", methods=("a", "b")))


def test_network_claims_compare_the_headline_with_the_others_at_each_network():
    c = Comparison(reference="dense", methods=("elrt", "a"), headline="elrt")
    near = [_run("elrt", s, 81.0 + 0.1 * s + 0.02 * (s % 2) - 0.01) for s in range(3)] + [
        _run("a", s, 80.0 + 0.1 * s) for s in range(3)
    ]
    far = [_run("elrt", s, 70.0 + (-1) ** s) for s in range(3)] + [_run("a", s, 70.0) for s in range(3)]
    plans = {net: [run for run, _ in near] for net in (("resnet20", 2.0), ("resnet20", 3.0), ("resnet20", 4.0))}
    claims = verdicts.network_claims(
        {("resnet20", 2.0): near, ("resnet20", 3.0): far}, c, lambda runs: f"{len(runs)} runs", plans
    )
    (c2, cmp2), (c3, _) = claims[("resnet20", 2.0)], claims[("resnet20", 3.0)]
    assert (c2.verdict, c3.verdict, c2.scale) == ("supported", "inconclusive", "6 runs")
    assert [x.reference for x in cmp2] == ["a"]  # the headline is not compared with itself
    text = verdicts.networks_text(claims)
    assert text.startswith("**resnet20 at 2x fewer FLOPs:** supported. ELRT − each: vs A (supported) +1.00")
    assert "\n\n**resnet20 at 3x fewer FLOPs:** inconclusive." in text
    ((none, _),) = verdicts.network_claims({("resnet20", 4.0): near[:3]}, c, str, plans).values()
    assert none.effect == "ELRT − each: no paired runs yet; without results so far: a" and none.verdict == "inconclusive"
    alone = {("resnet20", 4.0): near[:3]}  # the plan trains only ELRT here: no opponent, no missing method
    ((only, _),) = verdicts.network_claims(alone, c, str, {("resnet20", 4.0): [run for run, _ in near[:3]]}).values()
    assert only.effect == "ELRT − each: no paired runs yet" and only.verdict == "inconclusive"
    opponents_only = {("resnet20", 4.0): near[3:]}  # ELRT itself has no run here: named with the others
    ((absent, _),) = verdicts.network_claims(opponents_only, c, str, plans).values()
    elrt = methods()["elrt"].label  # no ELRT run: the study's label
    assert absent.effect == f"{elrt} − each: no paired runs yet; without results so far: {elrt}"
    assert absent.verdict == "inconclusive"


def _planned(*methods):
    return [SimpleNamespace(method=m, label=m.upper()) for m in methods]


def test_ranking_names_a_leader_only_beyond_the_noise():
    c = Comparison(reference="none", methods=("so", "mc"))
    noisy = [_run("none", s, 80.0) for s in range(4)]
    noisy += [_run("so", s, 80.5 + (-1) ** s) for s in range(4)] + [_run("mc", s, 80.2 - (-1) ** s) for s in range(4)]
    result = verdicts.ranking(noisy, c, "scale", _planned("none", "so", "mc"))
    assert [x.treatment for x in result.comparisons] == ["so", "mc"] and result.n_common == 4
    # Holm over 2 comparisons: both noisy, so the first step (0.05 / 2) does not reject and both keep its level
    assert all(x.confidence == pytest.approx(0.975) for x in result.comparisons)
    assert result.leader_sentence.startswith("No setting is ahead") and result.claim.verdict == "inconclusive"
    clear = [_run("none", s, 80.0 + 0.1 * s) for s in range(5)]
    clear += [_run("so", s, 83.0 + 0.1 * s + 0.01 * (-1) ** s) for s in range(5)]
    clear += [_run("mc", s, 81.0 + 0.1 * s + 0.02 * (s % 2)) for s in range(5)]
    lead = verdicts.ranking(clear, c, "scale", _planned("none", "so", "mc"))
    assert lead.leader_sentence == "SO is ahead of every other setting beyond the noise." and lead.claim.verdict == "supported"
    assert lead.any_difference < 0.05
    empty = verdicts.ranking([_run("so", 0, 80.0)], c, "scale", _planned("none", "so", "mc"))
    assert (
        empty.comparisons == [] and empty.claim.effect == "no finished runs yet; without results so far: none · mc"
    )  # reference too
    three = Comparison(reference="none", methods=("so", "mc", "srip"))
    partial = verdicts.ranking(clear, three, "scale", _planned("none", "so", "mc", "srip"))  # SRIP planned, no runs yet
    assert partial.claim.verdict == "inconclusive" and partial.claim.effect.endswith("; without results so far: srip")
    assert partial.leader_sentence.startswith("No setting is ahead")  # SRIP could be the one ahead
    assert lead.difference_text.startswith("Do the settings differ at all? Within-seed permutation test over the 5 seeds")
    assert empty.difference_text.endswith("fewer than two settings have finished runs.")
    one_seed = verdicts.ranking(
        [_run(m, 0, 80.0 + i) for i, m in enumerate(("none", "so", "mc"))], c, "scale", _planned("none", "so", "mc")
    )
    assert one_seed.difference_text.endswith("only 1 seed every setting has (a within-seed test needs 2).")
    # SRIP counts in the family: Holm starts at 0.05 / 3 for the smallest p, then 0.05 / 2
    assert sorted(x.confidence for x in partial.comparisons) == [pytest.approx(1 - 0.05 / 2), pytest.approx(1 - 0.05 / 3)]
    unplanned = verdicts.ranking(clear, three, "scale", _planned("none", "so", "mc"))  # this profile never trains SRIP
    assert unplanned.claim.verdict == "supported" and "without results" not in unplanned.claim.effect
    assert sorted(x.confidence for x in unplanned.comparisons) == [pytest.approx(0.95), pytest.approx(0.975)]  # Holm over 2


def test_a_claim_reads_as_one_sentence():
    claim = verdicts.Claim("+1.00 points (95% CI +0.50 to +1.50, n = 3)", "supported", "profile x, n = 3 seeds")
    assert claim.sentence() == "+1.00 points (95% CI +0.50 to +1.50, n = 3) (verdict: supported; profile x, n = 3 seeds)."


def test_the_win_grid_and_the_control_name_the_budgets_where_trained_structure_decides():
    rows = []
    # trained: Tucker-2 wins 2 of 3 layers against matrix at 2x and 3x; the control wins at 3x only
    for weights, wins in (("trained", {1.5: 0, 2.0: 2, 3.0: 3}), ("initialization", {1.5: 0, 2.0: 1, 3.0: 2})):
        for budget, w in wins.items():
            for i in range(3):
                rows += [
                    (weights, "macs", budget, f"l{i}", "tucker2", 0.1),
                    (weights, "macs", budget, f"l{i}", "matrix", 0.2 if i < w else 0.05),
                    (weights, "macs", budget, f"l{i}", "spatial", 0.05),
                ]
    errors = _budgets(rows)
    grid = verdicts.win_grid(errors, beyond=["spatial"])
    channel, spatial = "vs matrix rank, channel reshape", "vs matrix rank, spatial reshape (beyond the paper)"
    assert list(grid.columns) == [
        "per-layer budget",
        f"{channel}: trained",
        f"{channel}: control",
        f"{spatial}: trained",
        f"{spatial}: control",
    ]
    assert grid["per-layer budget"].tolist() == ["1.5x", "2x", "3x", "most layers from"]
    assert grid[f"{channel}: trained"].tolist() == ["0/3", "2/3", "3/3", "2x"]
    assert grid[f"{channel}: control"].tolist() == ["0/3", "1/3", "2/3", "3x"]
    assert grid[f"{spatial}: trained"].iloc[-1] == "never"
    assert verdicts.structure_budgets(errors) == {"matrix": [2.0], "spatial": []}
    text = verdicts.structure_text(errors, beyond=["spatial"])
    assert text.startswith("Against matrix rank, channel reshape: only at 2x fewer MACs does Tucker-2 (tensor rank) win most")
    assert text.endswith(
        "Against matrix rank, spatial reshape (beyond the paper): at no budget does Tucker-2 (tensor rank) win "
        "most layers of the trained network but not of the control."
    )


def test_a_comparison_outside_every_family_gives_means_and_an_unadjusted_word():
    def run(method, seed, test):
        return SimpleNamespace(method=method, config=SimpleNamespace(seed=seed)), SimpleNamespace(
            metrics={"final_test_top1": test}
        )

    c = Comparison(reference="compress-10", methods=("elrt",), treatment="elrt", smallest_effect=0.5)
    names = {"compress-10": "compression (10 + 5)", "elrt": "ELRT"}
    why = "planned after the family was declared"
    runs = [run("elrt", s, 85.0 + 0.1 * s) for s in range(3)]
    assert verdicts.beside_text(runs, c, names, why) == f"No comparison yet: compression (10 + 5) without finished runs ({why})."
    runs += [run("compress-10", s, 86.0 + 0.2 * s) for s in range(2)]  # seed 2 of the variant still training
    text = verdicts.beside_text(runs, c, names, why)
    assert text.startswith(
        "Final test top-1: compression (10 + 5) 86.10% (n = 2); ELRT 85.10% (n = 3). ELRT − compression (10 + 5): "
    )
    assert "n = 2" in text.split("ELRT − ")[1] and "Holm" not in text  # paired over the 2 common seeds, unadjusted
    assert text.endswith(f"contradicted (unadjusted 95% interval: {why}).")
