"""Hardware-aware rank rule: register sizes, the budget allocation (synthetic timing tables), the table record."""

import itertools
import random

import pytest
import torch

from elrt_core import cost, lowrank, models, records
from elrt_core.lowrank import hw_ranks
from elrt_core.lowrank.hw_ranks import Option, allocate, register_sizes
from elrt_core.train import rank_rule


def test_register_sizes_are_multiples_of_8_or_16_capped_at_the_full_rank():
    assert register_sizes(16) == (8, 16) and register_sizes(64) == (8, 16, 24, 32, 40, 48, 56, 64)
    assert register_sizes(128) == tuple(range(16, 129, 16)) and register_sizes(512) == tuple(range(64, 513, 64))
    assert register_sizes(20) == (8, 16, 20) and register_sizes(5) == (5,)
    assert register_sizes(64, max_sizes=4) == (16, 32, 48, 64)


def test_candidate_ranks_are_register_sized_and_cheaper_than_dense():
    geom = cost.ConvGeometry.of(torch.nn.Conv2d(64, 64, 3, padding=1), (8, 8))
    cands = hw_ranks.candidate_ranks(lowrank.Tucker2Conv2d, geom)
    assert cands and all(r % 8 == 0 for rs in cands for r in rs)
    assert all(lowrank.Tucker2Conv2d.cost(geom, r)[0] < geom.macs for r in cands)
    assert (64, 64) not in cands and (8, 8) in cands and (32, 32) in cands


def _brute_force(options, budget, fixed, tolerance=0.02):
    best = None
    for combo in itertools.product(*options.values()):
        total = fixed + sum(o.cost for o in combo)
        if budget / (1 + tolerance) <= total <= budget:
            t = sum(o.ms for o in combo)
            best = t if best is None else min(best, t)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_allocation_is_the_exact_optimum_on_small_tables(seed):
    """With one budget unit per cost unit the DP is exact: it matches enumeration of every allocation."""
    rng = random.Random(seed)
    options = {
        f"l{i}": [Option(None, 1000, rng.uniform(5, 10))]
        + [Option((r,), rng.randint(100, 900), rng.uniform(1, 10)) for r in range(4)]
        for i in range(4)
    }
    budget, fixed = 2600, 200
    chosen = allocate(options, budget, fixed, bins=budget - fixed)
    total = fixed + sum(o.cost for o in chosen.values())
    assert budget / 1.02 <= total <= budget
    assert sum(o.ms for o in chosen.values()) == pytest.approx(_brute_force(options, budget, fixed))


@pytest.mark.parametrize("seed", range(5))
def test_budget_is_met_within_two_percent_and_never_exceeded(seed):
    rng = random.Random(seed)
    options = {
        f"l{i}": [Option(None, 10_000 * (i + 1), 3.0)]
        + [Option((r,), rng.randint(500, 9_000) * (i + 1), rng.uniform(0.5, 4)) for r in range(12)]
        for i in range(30)
    }
    dense = sum(10_000 * (i + 1) for i in range(30))
    for ratio in (1.5, 2.0, 3.0):
        chosen = allocate(options, dense / ratio)
        total = sum(o.cost for o in chosen.values())
        assert total <= dense / ratio and dense / total <= ratio * 1.02


def test_picks_the_faster_of_two_equal_cost_options():
    options = {
        "a": [Option(None, 100, 9.0), Option((8,), 50, 4.0), Option((16,), 50, 2.5)],
        "b": [Option(None, 100, 9.0), Option((8,), 50, 3.0), Option((16,), 50, 3.5)],
    }
    chosen = allocate(options, 100)
    assert chosen["a"].ranks == (16,) and chosen["b"].ranks == (8,)


def test_keeps_a_layer_dense_when_that_is_the_only_way_to_be_fastest():
    """Layer 'slow' is faster dense than at any rank; 'wide' can take the whole saving, so the
    fastest allocation under the budget keeps 'slow' dense."""
    options = {
        "slow": [Option(None, 100, 1.0), Option((8,), 40, 1.5), Option((16,), 60, 1.8)],
        "wide": [Option(None, 1000, 10.0), Option((8,), 300, 3.0), Option((16,), 500, 5.0)],
    }
    chosen = allocate(options, 600)
    assert chosen["slow"].ranks is None and chosen["wide"].ranks == (16,)
    assert sum(o.cost for o in chosen.values()) == 600


def test_unreachable_budgets_raise():
    options = {"a": [Option(None, 100, 1.0), Option((8,), 40, 0.5)]}
    with pytest.raises(ValueError, match="the cheapest costs 40"):
        allocate(options, 30)
    with pytest.raises(ValueError, match="no allocation"):  # 70 is neither within 2% of 100 nor of 40
        allocate(options, 70)


def _synthetic_table(model="resnet20", fmt="tucker2", slow_stage=16):
    """A rank_table record of the model's shapes with made-up times: 1 ms per MFLOP-ish of MACs,
    odd-sized (not multiple of 16) ranks 1.5x slower, and the ``slow_stage``-channel layers slower at
    every rank than dense (a memory-bound stage)."""
    cls, shape = lowrank.FORMATS[fmt], models.input_shape(model)
    groups = {}
    for g in lowrank.convertible(models.get(model), shape).values():
        groups.setdefault(hw_ranks.shape_key(g), [g, 0])[1] += 1
    shapes = []
    for g, n in groups.values():
        slow = g.in_channels == g.out_channels == slow_stage
        cands = hw_ranks.candidate_ranks(cls, g)
        ms = {r: cls.cost(g, r)[0] / 1e6 * (1.5 if any(x % 16 for x in r) else 1.0) + (10.0 if slow else 0.0) for r in cands}
        shapes.append(
            {
                "in_channels": g.in_channels,
                "out_channels": g.out_channels,
                "kernel": list(g.kernel_size),
                "stride": list(g.stride),
                "padding": list(g.padding),
                "dilation": list(g.dilation),
                "in_hw": list(g.in_hw),
                "layers": n,
                "dense_macs": g.macs,
                "dense_params": g.params,
                "dense_ms": g.macs / 1e6,
                "candidates": [{"ranks": list(r), "ms": t} for r, t in ms.items()],
            }
        )
    record = {
        "kind": "rank_table",
        "model": model,
        "format": fmt,
        "batch_size": 128,
        "variant": "channels_last",
        "shapes": shapes,
        "provenance": {"device_name": "test-cpu", "ended": "2000-01-01T00:00:00+00:00"},
    }
    return {**record, "table_id": hw_ranks.table_id(record)}


@pytest.mark.parametrize("ratio", [2.0, 3.0])
def test_convert_with_a_timing_table_meets_the_budget_with_register_sized_ranks(ratio):
    record = _synthetic_table()
    table = lowrank.TimingTable.from_record(record)
    dense = models.get("resnet20")
    lr = lowrank.convert(dense, "tucker2", flops_ratio=ratio, init="scratch", timing=table)
    got = cost.count(dense).macs / cost.count(lr).macs
    assert ratio <= got <= ratio * 1.02
    layers = {n: m for n, m in lr.named_modules() if isinstance(m, lowrank.LowRankConv2d)}
    assert layers and all(r % 8 == 0 for m in layers.values() for r in m.ranks)
    if ratio == 2.0:  # reachable with the slow 16-channel stage dense, so it stays dense (at 3x it cannot)
        assert not any(n.startswith("layer1.") for n in layers)
    uniform = lowrank.convert(dense, "tucker2", flops_ratio=ratio, init="scratch")
    assert any(r % 8 for m in uniform.modules() if isinstance(m, lowrank.LowRankConv2d) for r in m.ranks)


def test_timing_table_checks_its_id_format_and_shapes():
    record = _synthetic_table()
    table = lowrank.TimingTable.from_record(record)
    assert table.covers(lowrank.convertible(models.get("resnet56"), (3, 32, 32)))  # CIFAR ResNets share shapes
    assert not table.covers(lowrank.convertible(models.get("vgg16"), (3, 32, 32)))
    edited = {**record, "shapes": [{**record["shapes"][0], "dense_ms": 0.001}, *record["shapes"][1:]]}
    with pytest.raises(ValueError, match="does not match its id"):
        lowrank.TimingTable.from_record(edited)
    with pytest.raises(ValueError, match="timed format 'tucker2', not 'matrix'"):
        lowrank.convert(models.get("resnet20"), "matrix", flops_ratio=2, init="scratch", timing=table)
    with pytest.raises(ValueError, match="has no layer of shape"):
        lowrank.convert(models.get("vgg16"), "tucker2", flops_ratio=2, init="scratch", timing=table)
    with pytest.raises(ValueError, match="not ranks"):
        lowrank.convert(models.get("resnet20"), "tucker2", ranks=0.5, timing=table)


# ---- the table as a committed record: lookup, resolution, training configs ----------------------------
@pytest.fixture
def table_in_results(tmp_path, monkeypatch):
    """A synthetic timing table of this CPU's name written under a temporary $ELRT_RESULTS/bench."""
    from elrt_core.records import write_json

    record = _synthetic_table()
    monkeypatch.setenv("ELRT_RESULTS", str(tmp_path))
    monkeypatch.setattr(records, "device_name", lambda device: "test-cpu")
    write_json(tmp_path / "bench" / "cpu" / "resnet20-tucker2-ranktable-b128-channels_last.json", record)
    return record


def test_build_model_uses_the_named_table_and_refuses_a_missing_one(table_in_results):
    from elrt_core.config import TrainConfig
    from elrt_core.train import build_model

    rule = f"hw:{table_in_results['table_id']}"
    model = build_model(TrainConfig(format="tucker2", flops_ratio=2, rank_rule=rule))
    expected = lowrank.convert(
        models.get("resnet20"), "tucker2", flops_ratio=2, init="scratch", timing=lowrank.TimingTable.from_record(table_in_results)
    )
    got = {n: m.ranks for n, m in model.named_modules() if isinstance(m, lowrank.LowRankConv2d)}
    assert got == {n: m.ranks for n, m in expected.named_modules() if isinstance(m, lowrank.LowRankConv2d)}
    assert got != {
        n: m.ranks
        for n, m in build_model(TrainConfig(format="tucker2", flops_ratio=2)).named_modules()
        if isinstance(m, lowrank.LowRankConv2d)
    }
    with pytest.raises(FileNotFoundError, match="no timing table with id 0123456789ab"):
        build_model(TrainConfig(format="tucker2", flops_ratio=2, rank_rule="hw:0123456789ab"))


def test_hw_rule_resolves_to_this_devices_table_or_falls_back_to_uniform(table_in_results, monkeypatch):

    cpu = torch.device("cpu")
    rule, note = rank_rule.resolve_rank_rule("hw", cpu, "tucker2", "resnet56", 128)
    assert rule == f"hw:{table_in_results['table_id']}" and table_in_results["table_id"] in note
    assert rank_rule.resolve_rank_rule("hw:0123456789ab", cpu, "tucker2", "resnet20") == ("hw:0123456789ab", None)
    rule, note = rank_rule.resolve_rank_rule("hw", cpu, "matrix", "resnet20")  # no matrix table
    assert rule == "uniform" and "falling back to the uniform rank rule" in note
    monkeypatch.setattr(records, "device_name", lambda device: "another-cpu")
    rule, note = rank_rule.resolve_rank_rule("hw", cpu, "tucker2", "resnet20")
    assert rule == "uniform" and "measured on another-cpu" in note


def test_train_stores_hw_as_the_resolved_table_or_the_uniform_fallback(table_in_results, monkeypatch, capsys):
    """`elrt train --rank-rule hw`: the config holds `hw:<id>` (a reproducible run), or `uniform` after a
    warning on a device with no table; the note goes to the run's provenance."""
    from elrt_core.cli import build_parser
    from elrt_core.cli.train import train_config

    argv = ["train", "--format", "tucker2", "--flops-ratio", "2", "--rank-rule", "hw", "--device", "cpu"]
    args = build_parser().parse_args(argv)
    assert train_config(args).rank_rule == f"hw:{table_in_results['table_id']}"
    assert table_in_results["table_id"] in args.notes[0]
    regularized = train_config(build_parser().parse_args([*argv, "--reg", "so"]))  # lambda is looked up, hw resolved
    assert regularized.rank_rule == f"hw:{table_in_results['table_id']}" and regularized.reg_weight > 0
    monkeypatch.setattr(records, "device_name", lambda device: "another-cpu")
    args = build_parser().parse_args(argv)
    assert train_config(args).rank_rule == "uniform" and "falling back" in args.notes[0]
    assert "elrt: warning: rank rule hw: no timing table" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (
            ["train", "--format", "tucker2", "--flops-ratio", "2", "--rank-rule", "hw:xyz"],
            "rank_rule must be 'uniform' or 'hw:<12 hex",
        ),
        (["train", "--rank-rule", "hw:0123456789ab"], "choose a low-rank format"),
        (
            ["info", "resnet20", "--format", "tucker2", "--flops-ratio", "2", "--rank-rule", "hw:0123456789ab"],
            "no timing table with id 0123456789ab",
        ),
        (
            ["info", "resnet20", "--format", "dense", "--rank-rule", "hw"],
            "a dense model takes no --flops-ratio/--params-ratio/--rank-rule",
        ),
    ],
)
def test_bad_rank_rules_on_the_command_line(argv, needle, capsys, tmp_path, monkeypatch):
    from elrt_core.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELRT_RESULTS", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("elrt: error: ") and needle in err


def test_info_shows_the_ranks_of_the_hw_rule(table_in_results, capsys):
    from elrt_core.cli import main

    assert (
        main(
            ["info", "resnet20", "--format", "tucker2", "--flops-ratio", "2", "--rank-rule", f"hw:{table_in_results['table_id']}"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "kept dense" in out and "whole network" in out
