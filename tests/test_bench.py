"""elrt bench: argument validation and the JSON schema of its records (no timing assertions)."""

import json

import pytest
import torch

from elrt_core import bench, lowrank, records
from elrt_core.cli import main


@pytest.mark.slow
def test_a_record_goes_to_its_machines_folder_so_machines_never_overwrite_each_other(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELRT_RESULTS", str(tmp_path))
    assert main(["bench", "--batch-size", "2", "--steps", "1", "--warmup", "0"]) == 0
    (path,) = (tmp_path / "bench" / "cpu").rglob("*.json")
    machine = records.device_slug(records.device_name(torch.device("cpu")))
    assert path.relative_to(tmp_path / "bench" / "cpu").parts == (machine, "resnet20-tucker2-2x-b2-channels_last.json")
    assert json.loads(path.read_text())["provenance"]["device_name"] == records.device_name(torch.device("cpu"))
    assert records.device_slug("AMD EPYC (avx512f)") == "amd-epyc-avx512f" and records.device_slug("?") == "unknown"


@pytest.mark.slow
def test_speedup_record_schema(tmp_path, capsys):
    out, steps = tmp_path / "b.json", 3
    assert main(["bench", "--batch-size", "4", "--steps", str(steps), "--warmup", "0", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    for key in (
        "kind",
        "model",
        "format",
        "flops_ratio",
        "device",
        "batch_size",
        "macs_ratio",
        "params_ratio",
        "train_speedup",
        "infer_speedup",
        "memory_ratio",
        "dense",
        "lowrank",
        "dense_variants",
        "best_dense",
        "train_speedup_best",
        "lowrank_levels",
        "provenance",
    ):
        assert key in rec, key
    assert "amdahl_ceiling" not in rec  # an estimate the measurement exceeded: gone (issue 28)
    assert rec["kind"] == "speedup" and abs(rec["macs_ratio"] / 2 - 1) <= 0.02
    assert rec["provenance"]["background_load_cores"] >= 0  # other processes' cores, measured on Linux
    for side in ("dense", "lowrank"):
        entry = rec[side]
        assert entry["train_step_ms"] > 0 and entry["infer_ms"] > 0 and entry["activation_bytes"] > 0
        rounds = entry["train_rounds_ms"]  # every timed round, in order; the median is the step time
        assert len(rounds) == steps and sorted(rounds)[len(rounds) // 2] == pytest.approx(entry["train_step_ms"])
        shares = entry["breakdown"]
        assert set(shares) == {*bench.PARTS, "conv"} and all(v >= 0 for v in shares.values())
        assert sum(shares[k] for k in bench.PARTS) == pytest.approx(1)
        assert shares["conv"] > 0 and shares["batchnorm"] > 0 and shares["relu"] > 0 and shares["add"] > 0
        assert shares["loss"] > 0 and shares["optimizer"] > 0
        assert entry["param_bytes"] > 0 and entry["optimizer_bytes"] == entry["param_bytes"]  # one momentum buffer each
        assert entry["peak_step_bytes"] is not None and entry["peak_step_bytes"] >= 0
    assert rec["dense"]["breakdown"]["conv_1x1"] == 0 and rec["lowrank"]["breakdown"]["conv_1x1"] > 0
    variants = rec["dense_variants"]  # the run's own dense (channels-last) and NCHW, timed in the same turns
    assert set(variants) == {"channels_last", "nchw"} and rec["best_dense"] in variants
    assert all(len(v["train_rounds_ms"]) == steps for v in variants.values())
    best = min(v["train_step_ms"] for v in variants.values())
    assert rec["train_speedup_best"] == pytest.approx(best / rec["lowrank"]["train_step_ms"])
    assert rec["train_speedup_best"] <= rec["train_speedup"] + 1e-12  # the fastest dense is never slower than the same
    levels = rec["lowrank_levels"]
    assert set(levels) == {"off", "chain", "all"} and rec["lowrank"]["recompute"] == lowrank.Tucker2Conv2d.recompute
    assert levels["all"]["activation_bytes"] < levels["chain"]["activation_bytes"] < levels["off"]["activation_bytes"]
    assert levels[rec["lowrank"]["recompute"]]["activation_bytes"] == rec["lowrank"]["activation_bytes"]
    assert rec["train_speedup"] == pytest.approx(rec["dense"]["train_step_ms"] / rec["lowrank"]["train_step_ms"])
    assert rec["memory_ratio"] == pytest.approx(rec["dense"]["activation_bytes"] / rec["lowrank"]["activation_bytes"])
    out = capsys.readouterr()
    assert "speedup" in out.out and "target" not in out.out  # batch 4: no target applies
    assert "elrt bench: timing" in out.err  # progress on stderr, the result on stdout


def test_the_profiler_prints_nothing_and_the_parts_add_up_to_the_step(capfd):
    """No profiler start/stop lines reach the terminal (they come from C++ on file descriptor 2)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    stepper = bench.Stepper(net, torch.randn(2, 3, 4, 4), torch.tensor([1, 2]))
    shares = bench.breakdown(stepper.train_step, steps=2)
    captured = capfd.readouterr()
    assert "profiler_start" not in captured.err + captured.out and "USDT" not in captured.err + captured.out
    assert sum(shares[p] for p in bench.PARTS) == pytest.approx(1) and all(shares[p] >= 0 for p in bench.PARTS)
    assert shares["conv"] == pytest.approx(sum(shares[p] for p in bench.CONV_PARTS))
    assert shares["loss"] > 0 and shares["optimizer"] > 0 and shares["relu"] > 0


def test_background_load_counts_the_other_processes_cpu_time_not_this_ones(monkeypatch):
    from types import SimpleNamespace

    from elrt_core import machine_load as load_module
    from elrt_core.bench.report import summary

    clock = {"wall": 100.0, "own": 5.0, "busy": 1000.0}
    monkeypatch.setattr(load_module.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(load_module, "_own_seconds", lambda: clock["own"])
    monkeypatch.setattr(load_module, "_busy_seconds", lambda: clock["busy"])
    load = load_module.BackgroundLoad()
    clock.update(wall=110.0, own=25.0, busy=1020.5)  # 10 s: this process used 2 cores, the machine 2.05
    assert load.provenance() == {"background_load_cores": 0.05} and load_module.quiet(load.provenance())
    clock.update(wall=120.0, own=35.0, busy=1040.0)  # next 10 s: 1 core ours, 1.95 busy -> others 0.95 core
    assert load.cores() == 0.5 and load_module.quiet(load.provenance()) is False  # 10 s of others over 20 s
    monkeypatch.undo()  # the real clocks again; own time from os.times, children included:
    times = SimpleNamespace(user=1.0, system=0.5, children_user=2.0, children_system=0.25)
    monkeypatch.setattr(load_module.os, "times", lambda: times)
    assert load_module._own_seconds() == 3.75  # a compiler run by torch.compile is this bench's own time
    monkeypatch.setenv("ELRT_QUIET_CORES", "0.6")  # a machine whose idle load is higher
    assert load_module.quiet({"background_load_cores": 0.5}) and load_module.quiet_limit() == 0.6
    monkeypatch.setenv("ELRT_QUIET_CORES", "many")
    with pytest.raises(ValueError, match="ELRT_QUIET_CORES must be a number of cores >= 0, got 'many'"):
        load_module.quiet({"background_load_cores": 0.5})
    monkeypatch.delenv("ELRT_QUIET_CORES")
    monkeypatch.setattr(load_module, "_busy_seconds", lambda: None)  # no /proc/stat
    assert load_module.BackgroundLoad().cores() is None and load_module.quiet({}) is None
    record = {"kind": "x", "provenance": {"background_load_cores": 1.93}}
    monkeypatch.setattr("elrt_core.bench.report._measured", lambda r: "measured")
    assert "warning: other processes kept 1.93 cores busy" in summary(record)
    assert summary({**record, "provenance": {"background_load_cores": 0.01}}) == "measured"


@pytest.mark.slow
def test_autotuned_variant_records_its_choices(tmp_path):
    out = tmp_path / "a.json"
    assert (
        main(["bench", "--variant", "autotuned", "--batch-size", "4", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    )
    rec = json.loads(out.read_text())
    assert rec["variant"] == "autotuned" and len(rec["impl_choices"]["train"]) == 18
    assert set(rec["impl_choices"]["inference"].values()) <= {"factored", "dense", "fold_first", "fold_last"}


@pytest.mark.slow
def test_bf16_variant_saves_half_precision_activations(tmp_path):
    recs = {}
    for variant in ("channels_last", "bf16"):
        out = tmp_path / f"{variant}.json"
        assert (
            main(["bench", "--variant", variant, "--batch-size", "4", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
        )
        recs[variant] = json.loads(out.read_text())
    for side in ("dense", "lowrank"):
        assert recs["bf16"][side]["activation_bytes"] < 0.75 * recs["channels_last"][side]["activation_bytes"]


@pytest.mark.slow
def test_compiled_stepper_trains_the_eager_parameters(monkeypatch):
    import torch

    # What is checked: the compiled forward trains the eager module's parameters (TorchDynamo and AOTAutograd
    # take them as graph inputs). Inductor's code generation, a minute of C++ compiling on a cold CPU, plays
    # no part in that, so the graphs run eagerly ("aot_eager": the same capture, no generated kernels).
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **options: real_compile(model, backend="aot_eager", **options))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    before = net[0].weight.detach().clone()
    stepper = bench.Stepper(net, torch.randn(2, 3, 4, 4), torch.tensor([1, 2]), compiled=True)
    assert stepper.train() > 0 and stepper.infer() > 0
    assert stepper.forward is not net and not torch.equal(before, net[0].weight)


def test_breakdown_sorts_convolutions_by_kernel_and_accepts_inplace_relu():
    import torch

    from elrt_core import lowrank, models

    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    cp = lowrank.convert(models.get("resnet20"), "cp", flops_ratio=2, input_shape=(3, 32, 32), init="scratch")
    shares = bench.breakdown(bench.Stepper(cp, x, y).train_step, steps=1)
    assert shares["conv_depthwise"] > 0 and shares["conv_1x1"] > 0 and shares["conv_kxk"] > 0  # kxk: the stem
    vgg = models.get("vgg16")
    assert any(getattr(m, "inplace", False) for m in vgg.modules())
    shares = bench.breakdown(bench.Stepper(vgg, x, y).train_step, steps=1)
    assert shares["relu"] > 0 and shares["conv_1x1"] == 0 and shares["conv_depthwise"] == 0


def test_layer_times_record(tmp_path, capsys):
    out = tmp_path / "l.json"
    assert main(["bench", "--layers", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "layer_times" and sum(r["layers"] for r in rec["rows"]) == 18  # ResNet-20's converted convs
    for r in rec["rows"]:
        assert r["dense_ms"] > 0 and r["lowrank_ms"] > 0 and r["aligned_ms"] > 0 and r["macs_ratio"] > 1
        assert r["speedup"] == pytest.approx(r["dense_ms"] / r["lowrank_ms"])
        assert all(a in (8, 16, 32, 48, 64) or a == k < 6 for a, k in zip(r["aligned_ranks"], r["ranks"]))
    assert 1.9 < rec["totals"]["macs_ratio"] < 2.2 and rec["totals"]["aligned_macs_ratio"] >= rec["totals"]["macs_ratio"]
    assert "all converted layers" in capsys.readouterr().out


def test_aligned_ranks_move_to_the_nearest_of_8_and_multiples_of_16():
    assert bench.aligned_ranks((39, 41, 24, 19, 15, 11, 7, 5), (64,) * 8) == (32, 48, 16, 16, 16, 8, 8, 5)
    assert bench.aligned_ranks((19, 10), (20, 64)) == (16, 8)  # never above the full rank


def test_regularizer_overhead_record(tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench", "--reg-overhead", "--batch-size", "4", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "regularizer_overhead"
    assert [r["regularizer"] for r in rec["rows"]] == ["none", "so", "dso", "mc", "srip"]
    assert rec["rows"][0]["overhead_pct"] == 0 and rec["rows"][0]["penalty_ms"] == 0
    assert all(r["penalty_ms"] > 0 and r["penalty_pct"] > 0 for r in rec["rows"][1:])


def test_activation_bytes_counts_saved_tensors():
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
    x = torch.randn(2, 3, 8, 8)
    # conv saves its input (2*3*8*8 floats), ReLU its output (2*8*8*8 floats); weights are excluded
    assert bench.activation_bytes(net, x) == 4 * (2 * 3 * 64 + 2 * 8 * 64)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["bench", "--model", "resnet21"], "argument --model: invalid choice: 'resnet21'"),
        (["bench", "--format", "svd"], "argument --format: invalid choice: 'svd'"),
        (["bench", "--flops-ratio", "1"], "argument --flops-ratio: must be > 1, got 1"),
        (["bench", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
        (["bench", "--batch-size", "0"], "argument --batch-size: must be > 0, got 0"),
        (["bench", "--steps", "0"], "argument --steps: must be > 0, got 0"),
        (["bench", "--reg", "l1"], "argument --reg: invalid choice: 'l1'"),
        (["bench", "--variant", "turbo"], "argument --variant: invalid choice: 'turbo'"),
        (["bench", "--json", "/proc/nope/b.json"], "is not writable"),
        (["bench", "--layers", "--reg-overhead"], "give one of them"),
        (["bench", "--layers", "--variant", "bf16"], "--layers supports --variant factored or channels_last"),
    ],
)
def test_bad_arguments(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_speed_claim_judges_every_quiet_record_of_the_training_setting_per_machine(tmp_path):
    from types import SimpleNamespace

    from elrt_core.records import write_json
    from elrt_core.study import bench_records

    def speed(
        name,
        model,
        speedup,
        batch=128,
        variant="channels_last",
        rule="uniform",
        reg="none",
        device="cpu-x",
        started="2026-11-27T10:00:00+00:00",
        jitter=0.01,
        rounds=10,
        load=0.02,
        memory=None,
    ):
        low = [100.0 + i % 3 for i in range(rounds)]  # ms per timed round; dense = speedup x low-rank, +-jitter
        dense = [speedup * t * (1 + jitter * (-1) ** i) for i, t in enumerate(low)]
        record = {
            "kind": "speedup",
            "model": model,
            "format": "tucker2",
            "variant": variant,
            "rank_rule": rule,
            "reg": reg,
            "macs_ratio": 2.04,
            "batch_size": batch,
            "train_speedup": speedup,
            "dense": {"train_rounds_ms": dense},
            "lowrank": {"train_rounds_ms": low},
            "provenance": {
                "device_name": device,
                "started": started,
                "commit": "abcdef0123",
                "dirty": False,
                "background_load_cores": load,
                "torch_threads": 2,
            },
        }
        if memory:  # (dense, low-rank) bytes of parameters, optimizer state, activations; recompute-all activations
            (dp, dopt, da), (lp, lopt, la), every = memory
            record["dense"].update(param_bytes=dp, optimizer_bytes=dopt, activation_bytes=da)
            record["lowrank"].update(param_bytes=lp, optimizer_bytes=lopt, activation_bytes=la)
            record["lowrank_levels"] = {"all": {"activation_bytes": every}}
        write_json(tmp_path / "bench" / f"{name}.json", record)

    session = SimpleNamespace(root=tmp_path)
    assert bench_records.speed_claim(session).verdict == "inconclusive"  # no record yet
    speed("unmeasured", "resnet20", 1.5, load=None)  # the load was not measured: never judged
    speed("busy", "resnet20", 1.5, load=1.9)  # beside a training run: never judged
    speed("once", "resnet20", 1.5, rounds=1)  # no interval: never judged
    claim = bench_records.speed_claim(session)
    assert claim.verdict == "inconclusive" and claim.effect.startswith("no quiet bench record"), claim.effect
    speed("a", "resnet20", 0.9)
    speed("small-batch", "resnet20", 1.6, batch=8)  # not the training setting
    speed("autotuned", "resnet20", 1.7, variant="autotuned")
    speed("penalty", "resnet20", 1.8, reg="so")  # a step timed with a penalty
    speed("c", "resnet50", 2.0)  # ImageNet shapes: not a network of the claim
    speed("hw", "resnet20", 1.5, rule="hw:abc")  # listed with its interval, not judged
    claim = bench_records.speed_claim(session)
    assert claim.verdict == "contradicted", claim.effect
    assert "on cpu-x (1 uniform-rank record, 1 hardware-aware, against dense channels-last): resnet20 0.90x (0.8" in claim.effect
    assert ", hardware-aware ranks 1.50x (1.4" in claim.effect and "hardware-aware ranks listed, not judged" in claim.effect
    for left_out in ("1.60x", "1.70x", "1.80x", "2.00x", "resnet50", "commit"):
        assert left_out not in claim.effect, left_out
    assert claim.effect.endswith("[contradicted]. With uniform ranks, every judged 95% interval ends at or below 0.91x")
    speed("old-machine", "resnet20", 1.4, load=None, device="cpu-old")  # a machine whose records are never judged
    claim = bench_records.speed_claim(session)
    assert claim.effect.endswith(
        ". Not judged: the records of cpu-old (the machine's load not measured, or measured busy, or fewer than 2 paired "
        "step times)"
    )
    assert "1.40x" not in claim.effect and claim.verdict == "contradicted"
    assert (
        "1 quiet uniform-rank bench record with per-step times on 1 machine" in claim.scale and "1 hardware-aware" in claim.scale
    )
    # every quiet record counts, not only the newest: a newer, faster record on the same machine disagrees
    speed("b", "resnet20", 1.2, started="2026-11-28T10:00:00+00:00")
    claim = bench_records.speed_claim(session)
    assert claim.verdict == "inconclusive" and "0.90x" in claim.effect and "1.20x" in claim.effect, claim.effect
    assert "[inconclusive]" in claim.effect
    # per machine: one machine supported, the other inconclusive -> the row decides nothing
    memory = ((1000, 1000, 200), (500, 500, 310), 160)
    speed("new20", "resnet20", 1.3, jitter=0.002, device="cpu-new", memory=memory)
    speed("new56", "resnet56", 1.25, jitter=0.002, device="cpu-new")
    claim = bench_records.speed_claim(session)
    assert claim.verdict == "inconclusive", claim.effect
    assert (
        "on cpu-new (2 uniform-rank records, against dense channels-last): resnet20 1.30x (" in claim.effect
        and "[supported]" in claim.effect
    )
    assert (
        "low-rank / dense: resnet20 parameters 0.50x, optimizer state 0.50x, activation memory 1.55x (0.80x recomputing every intermediate)"
        in claim.effect
    )
    # the machines agree once cpu-x's records do: its slow record is not judged once it was busy
    write_json(tmp_path / "bench" / "a.json", {**json.loads((tmp_path / "bench" / "a.json").read_text()), "kind": "other"})
    speed("c56", "resnet56", 1.3, jitter=0.002)
    speed("b", "resnet20", 1.2, jitter=0.002, started="2026-11-28T10:00:00+00:00")
    assert bench_records.speed_claim(session).verdict == "supported"
    # a speedup around 1 measured tightly on every machine: no meaningful effect
    for name in ("b", "c56", "new20", "new56", "hw"):
        (tmp_path / "bench" / f"{name}.json").unlink()
    speed("flat", "resnet20", 1.0, jitter=0.002)  # 1.00x, interval inside (0.91, 1.10)
    claim = bench_records.speed_claim(session)
    assert claim.verdict == "no meaningful effect" and "smallest speedup of interest 1.10x" in claim.scale, claim.effect


def test_judged_records_are_the_ringed_records_of_the_speedup_table(tmp_path):
    from types import SimpleNamespace

    from elrt_core.records import write_json
    from elrt_core.study import bench_records

    rounds = [100.0, 101.0, 99.0]
    base = {"kind": "speedup", "model": "resnet20", "format": "tucker2", "variant": "channels_last", "rank_rule": "uniform"}
    base |= {"reg": "none", "macs_ratio": 2.0, "batch_size": 128, "train_speedup": 1.0, "infer_speedup": 1.0}
    base |= {"dense": {"train_rounds_ms": rounds, "train_step_ms": 100.0}, "steps": 3, "flops_ratio": 2.0}
    base |= {"lowrank": {"train_rounds_ms": rounds, "train_step_ms": 100.0}}
    for name, load in (("quiet", 0.01), ("unmeasured", None)):
        prov = {"device_name": "cpu-x", "started": "2026-11-27T10:00:00+00:00", "background_load_cores": load}
        write_json(tmp_path / "bench" / f"{name}.json", {**base, "provenance": prov})
    table = bench_records.speedup_table(SimpleNamespace(root=tmp_path))
    assert table["judged"].tolist().count(True) == 1
    fig = bench_records.speedup_figure(table)
    rings = [len(c.get_offsets()) for ax in fig.axes for c in ax.collections if c.get_label() == "judged by claim 5"]
    assert rings == [1]
    judged = bench_records.judged_records(bench_records.load(tmp_path, "speedup"))
    assert [r["path"].endswith("quiet.json") for r in judged["cpu-x"][("resnet20", False)]] == [True]


def test_run_speedups_match_each_method_to_the_newest_bench_record_of_its_network(tmp_path):
    from types import SimpleNamespace

    from elrt_core import profiles
    from elrt_core.records import write_json
    from elrt_core.study import bench_records, plan

    def speed(name, rule, speedup, started, variant="channels_last", device="x", load=None):
        record = {"kind": "speedup", "model": "resnet20", "format": "tucker2", "flops_ratio": 2.0, "rank_rule": rule}
        record |= {"reg": "none", "variant": variant, "batch_size": 128, "macs_ratio": 2.0, "train_speedup": speedup}
        prov = {"device_name": device, "started": started, "background_load_cores": load}
        write_json(tmp_path / "bench" / f"{name}.json", {**record, "provenance": prov})

    runs = [(r, None) for r in plan.comparison(profiles.load("cpu-full"), "rank_rule")]
    session = SimpleNamespace(root=tmp_path)
    assert bench_records.run_speedups(session, runs) == ({}, None)
    speed("old", "uniform", 0.9, "2026-11-01T00:00:00+00:00")
    speed("new", "uniform", 1.1, "2026-11-02T00:00:00+00:00")
    speed("other-variant", "uniform", 2.0, "2026-11-03T00:00:00+00:00", variant="autotuned")
    speed("hw", "hw:a8d8877a3eba", 1.4, "2026-11-02T00:00:00+00:00")
    speed("hw-other-table", "hw:000000000000", 1.9, "2026-11-02T00:00:00+00:00")
    assert bench_records.run_speedups(session, runs) == ({"tucker2": 1.1, "tucker2-hw": 1.4}, "x")
    # a newer record on another machine that has only one of the two networks: both stay from one machine
    speed("elsewhere", "uniform", 0.8, "2026-11-05T00:00:00+00:00", device="y")
    assert bench_records.run_speedups(session, runs) == ({"tucker2": 1.1, "tucker2-hw": 1.4}, "x")
    speed("busy", "hw:a8d8877a3eba", 1.9, "2026-11-06T00:00:00+00:00", device="x", load=1.0)  # measured beside a run
    assert bench_records.run_speedups(session, runs) == ({"tucker2": 1.1, "tucker2-hw": 1.4}, "x")
    speed("quiet", "hw:a8d8877a3eba", 1.3, "2026-11-06T00:00:00+00:00", device="y", load=0.02)
    assert bench_records.run_speedups(session, runs) == ({"tucker2": 0.8, "tucker2-hw": 1.3}, "y")  # y has both, newest
    labels = {"tucker2": "Tucker-2", "tucker2-hw": "Tucker-2, hardware-aware ranks"}
    assert bench_records.speedups_source({"tucker2": 0.8, "tucker2-hw": 1.3}, "y", labels) == "on y, one machine for all"
    assert (
        bench_records.speedups_source({"tucker2": 0.8}, "y", labels) == "on y; no record there of Tucker-2, hardware-aware ranks"
    )
    assert bench_records.speedups_source({}, None, labels) == "no bench record of these networks yet"


def test_thresholds_table_judges_each_threshold_from_the_records(tmp_path):
    from types import SimpleNamespace

    from elrt_core.records import write_json
    from elrt_core.study import bench_records

    prov = {"device_name": "cpu-x"}
    for variant, speedup in (("factored", 0.7), ("autotuned", 1.6)):
        write_json(
            tmp_path / "bench" / f"{variant}.json",
            {
                "kind": "speedup",
                "model": "resnet56",
                "format": "tucker2",
                "macs_ratio": 2.001,
                "variant": variant,
                "batch_size": 128,
                "train_speedup": speedup,
                "provenance": prov,
            },
        )
    write_json(
        tmp_path / "bench" / "reg.json",
        {
            "kind": "regularizer_overhead",
            "model": "resnet20",
            "variant": "channels_last",
            "provenance": prov,
            "rows": [
                {"regularizer": "none", "penalty_pct": 0.0},
                {"regularizer": "so", "penalty_pct": 1.2},
                {"regularizer": "mc", "penalty_pct": 7.5},
                {"regularizer": "srip", "penalty_pct": 9.0},
            ],
        },
    )
    table = bench_records.thresholds(SimpleNamespace(root=tmp_path))
    speed = table[table["threshold"].str.contains("speedup")]
    assert len(speed) == 1 and speed["variant"].item() == "autotuned" and bool(speed["met"].item())
    assert "resnet56 tucker2 at 2x fewer MACs, batch 128: training speedup >= 1.25x" in speed["threshold"].item()
    regs = dict(zip(table["threshold"], table["met"]))
    assert regs["resnet20 SO penalty <= 5% of the step"] and not regs["resnet20 MC penalty <= 5% of the step"]
    assert not any("SRIP" in t for t in regs)  # SRIP has no target; its time is only reported


def test_a_speedup_just_under_its_threshold_is_printed_with_the_decimals_that_decide_it(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from elrt_core.records import write_json
    from elrt_core.study import bench_records, bench_thresholds

    write_json(
        tmp_path / "bench" / "a.json",
        {
            "kind": "speedup",
            "model": "resnet56",
            "format": "tucker2",
            "macs_ratio": 2.0,
            "variant": "a",
            "batch_size": 128,
            "train_speedup": 1.2496,
            "provenance": {"device_name": "cpu-x"},
        },
    )
    write_json(
        tmp_path / "bench" / "busy.json",
        {
            "kind": "speedup",
            "model": "resnet56",
            "format": "tucker2",
            "macs_ratio": 2.0,
            "variant": "b",
            "batch_size": 128,
            "train_speedup": 2.0,
            "provenance": {"device_name": "cpu-x", "background_load_cores": 1.0},  # beside a training run
        },
    )
    session = SimpleNamespace(root=tmp_path)
    (row,) = bench_records.thresholds(session).itertuples()  # the busy record's 2.0x never counts
    assert row.measured == 1.2496 and not row.met  # 2 decimals would print 1.25 beside "not reached"
    assert "2.00x" not in bench_records.targets_text(session)
    assert "2026-11-27" in bench_records.thresholds_history()  # when the thresholds were set, for the caption
    text = bench_records.targets_text(session)
    assert "training speedup >= 1.25x not reached (1.2496x)" in text
    assert "resnet56: 1.2496x at 2x fewer MACs" in text  # the best-value list too, never "1.25x at"
    limits = {"speedup": [{"model": "m", "macs_reduction": 2, "min_speedup": v} for v in (1.25, 1.8)]}
    monkeypatch.setattr(bench_thresholds, "_thresholds", lambda: limits)  # two limits: the one needing more decimals wins
    assert bench_thresholds._near_limit(1.2496, "m", 2) == 1.2496 and bench_thresholds._near_limit(1.3333, "m", 2) == 1.33


def test_conv_speedups_separate_the_convolutions_from_the_rest(tmp_path):
    from types import SimpleNamespace

    from elrt_core.records import write_json
    from elrt_core.study import bench_records

    write_json(
        tmp_path / "bench" / "r.json",
        {
            "kind": "speedup",
            "model": "resnet56",
            "format": "tucker2",
            "variant": "channels_last",
            "batch_size": 128,
            "macs_ratio": 2.0,
            "train_speedup": 0.8,
            "provenance": {"device_name": "cpu-x"},
            "dense": {"train_step_ms": 400.0, "breakdown": {"conv": 0.5}},  # conv 200 ms, rest 200 ms
            "lowrank": {"train_step_ms": 500.0, "breakdown": {"conv": 0.4}},
        },
    )  # conv 200 ms, rest 300 ms
    row = bench_records.conv_speedups(SimpleNamespace(root=tmp_path)).iloc[0]
    assert row["dense_conv_ms"] == 200 and row["lowrank_conv_ms"] == 200
    assert row["conv_speedup"] == 1.0 and row["rest_ratio"] == 1.5


def test_verdict_names_the_best_speedups_and_the_thresholds(tmp_path):
    from types import SimpleNamespace

    from elrt_core.records import write_json
    from elrt_core.study import bench_records

    session = SimpleNamespace(root=tmp_path)
    assert bench_records.targets_text(session).startswith("No bench records yet")
    prov = {"device_name": "cpu-x"}
    for name, model, ratio, speedup in (
        ("a", "resnet56", 2.0, 0.9),
        ("b", "resnet56", 2.0, 1.10505),  # rounded once in every text: 1.11, never 1.105 -> "1.10"
        ("c", "resnet56", 3.01, 2.1),
        ("d", "resnet50", 2.0, 1.6),
    ):
        write_json(
            tmp_path / "bench" / f"{name}.json",
            {
                "kind": "speedup",
                "model": model,
                "format": "tucker2",
                "macs_ratio": ratio,
                "variant": name,
                "train_speedup": speedup,
                "batch_size": 16 if model == "resnet50" else 128,
                "provenance": prov,
            },
        )
    write_json(
        tmp_path / "bench" / "reg.json",
        {
            "kind": "regularizer_overhead",
            "model": "resnet20",
            "variant": "channels_last",
            "provenance": prov,
            "rows": [{"regularizer": "so", "penalty_pct": 1.2}, {"regularizer": "mc", "penalty_pct": 7.5}],
        },
    )
    text = bench_records.targets_text(session)
    assert text.startswith("One item per device.\n\n- On cpu-x:") and "resnet50: 1.60x at 2x fewer MACs" in text
    assert "resnet56: 1.11x at 2x fewer MACs, 2.10x at 3x fewer MACs" in text
    assert "training speedup >= 1.25x not reached (1.11x)" in text and "training speedup >= 1.6x reached (2.10x)" in text
    assert "batch 16: training speedup >= 1.8x not reached (1.60x)" in text
    assert "at most 7.50% of a step (threshold 5%: not reached)" in text


# ---- rank rules, timing tables, CUDA records -----------------------------------------------------------
@pytest.mark.slow
def test_rank_table_record_and_a_bench_of_its_hw_rule(tmp_path, monkeypatch, capsys):
    """`--rank-table` times every ResNet-20 shape dense and at register-sized ranks (tiny batch: schema
    only); `--rank-rule hw:<id>` then benches the network whose ranks that table allocates."""
    from elrt_core.lowrank import TimingTable, hw_ranks

    monkeypatch.setenv("ELRT_RESULTS", str(tmp_path))
    out = tmp_path / "bench" / "cpu" / "t.json"
    assert main(["bench", "--rank-table", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "rank_table" and rec["table_id"] == hw_ranks.table_id(rec) and rec["rank_sizes"] == bench.RANK_SIZES
    assert sum(s["layers"] for s in rec["shapes"]) == 18 and len(rec["shapes"]) == 5  # ResNet-20's converted convs
    for s in rec["shapes"]:
        assert s["dense_ms"] > 0 and s["candidates"] and all(c["ms"] > 0 for c in s["candidates"])
        assert all(r % 8 == 0 and c["macs"] < s["dense_macs"] for c in s["candidates"] for r in c["ranks"])
    assert TimingTable.from_record(rec).table_id == rec["table_id"]
    assert f"hw:{rec['table_id']}" in capsys.readouterr().out
    low = tmp_path / "hw.json"
    assert (
        main(
            [
                "bench",
                "--rank-rule",
                f"hw:{rec['table_id']}",
                "--batch-size",
                "4",
                "--steps",
                "1",
                "--warmup",
                "0",
                "--json",
                str(low),
            ]
        )
        == 0
    )
    hw = json.loads(low.read_text())
    assert hw["rank_rule"] == f"hw:{rec['table_id']}" and 2 <= hw["macs_ratio"] <= 2.04 and hw["train_speedup_best"] > 0
    assert f"(hw:{rec['table_id']} ranks)" in capsys.readouterr().out


def test_hw_rule_without_a_table_for_this_device_falls_back_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELRT_RESULTS", str(tmp_path))
    monkeypatch.setattr(records, "device_name", lambda device: "a-device-with-no-table")
    out = tmp_path / "b.json"
    assert (
        main(["bench", "--rank-rule", "hw", "--layers", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--json", str(out)])
        == 0
    )
    rec = json.loads(out.read_text())
    assert rec["rank_rule"] == "uniform" and rec["rank_rule_requested"] == "hw"
    assert "falling back to the uniform rank rule" in rec["rank_rule_note"]
    assert "warning: rank rule hw: no timing table" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["bench", "--rank-rule", "hw:xyz"], "--rank-rule must be uniform, hw or hw:<table id>, got 'hw:xyz'"),
        (["bench", "--rank-rule", "hw:0123456789ab"], "no timing table with id 0123456789ab"),
        (["bench", "--rank-table", "--layers"], "--layers and --rank-table measure different things; give one of them"),
        (["bench", "--rank-table", "--variant", "autotuned"], "--rank-table supports --variant factored or channels_last"),
    ],
)
def test_bad_rank_rule_arguments(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ELRT_RESULTS", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


@pytest.mark.slow
def test_folded_bn_variant_times_inference_without_batch_norms(tmp_path, monkeypatch):
    from elrt_core import lowrank

    folded = []
    real = lowrank.fold_batchnorm
    monkeypatch.setattr(lowrank, "fold_batchnorm", lambda m: folded.append(real(m)) or folded[-1])
    out = tmp_path / "f.json"
    assert (
        main(["bench", "--variant", "folded_bn", "--batch-size", "2", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    )
    rec = json.loads(out.read_text())
    assert rec["variant"] == "folded_bn" and rec["dense"]["infer_ms"] > 0 and rec["lowrank"]["infer_ms"] > 0
    assert len(folded) == 2 and not any(isinstance(m, torch.nn.BatchNorm2d) for f in folded for m in f.modules())
    assert "breakdown" in rec["dense"]  # training is measured as channels_last


def test_a_cuda_record_without_breakdown_renders_in_every_table(tmp_path):
    """What `elrt bench --device cuda` writes (no profiler breakdown) next to CPU records of the format
    made before issue 28 (one dense variant, no recompute levels): every table and the chapter's
    answer read both."""
    from types import SimpleNamespace

    import pandas as pd

    from elrt_core.records import write_json
    from elrt_core.study import bench_records

    def record(device, breakdown, rule="uniform", started="2026-11-02T00:00:00+00:00"):
        side = {"train_step_ms": 10.0, "infer_ms": 3.0, "train_images_per_s": 12800.0, "macs": 1, "activation_bytes": 100}
        return {
            "kind": "speedup",
            "model": "resnet56",
            "format": "tucker2",
            "device": "cpu" if breakdown else "cuda",
            "variant": "channels_last",
            "batch_size": 128,
            "flops_ratio": 2.0,
            "rank_rule": rule,
            "macs_ratio": 2.01,
            "params_ratio": 2.0,
            "train_speedup": 1.3,
            "infer_speedup": 1.1,
            "memory_ratio": 1.5,
            "dense": {**side, **({"breakdown": breakdown} if breakdown else {"peak_memory_bytes": 10})},
            "lowrank": {**side, "train_step_ms": 7.7, **({"breakdown": breakdown} if breakdown else {})},
            "provenance": {"device_name": device, "started": started},
        }

    shares = {**dict.fromkeys(bench.PARTS, 0.1), "conv": 0.4}
    write_json(tmp_path / "bench" / "cpu" / "r.json", record("cpu-x", shares))
    s = SimpleNamespace(root=tmp_path)
    assert bench_records.gpu_text(s).startswith("No GPU number exists yet: every bench record was measured on a CPU (cpu-x)")
    write_json(tmp_path / "bench" / "cuda" / "r.json", record("NVIDIA H100 80GB HBM3", None, "hw:0123456789ab"))
    write_json(tmp_path / "bench" / "cpu" / "old" / "r.json", record("cpu-old", shares, started="2026-11-01T00:00:00+00:00"))
    assert bench_records.gpu_text(s).startswith("GPU records exist for NVIDIA H100 80GB HBM3")
    speed = bench_records.speedup_table(s).set_index("device")
    gpu = speed.loc["NVIDIA H100 80GB HBM3"]
    assert gpu["train_speedup"] == 1.3 and gpu["activation_ratio"] == 0.67 and pd.isna(gpu["train_speedup_best"])
    assert speed.loc["NVIDIA H100 80GB HBM3", "rank_rule"] == "hw:0123456789ab"
    goals = bench_records.thresholds(s).set_index("device")
    assert goals.loc["NVIDIA H100 80GB HBM3", "measured"] == 1.3
    assert set(bench_records.breakdown_table(s)["device"]) == {"cpu-x", "cpu-old"}  # the CUDA record has no breakdown
    assert set(bench_records.conv_speedups(s)["device"]) == {"cpu-x", "cpu-old"}
    assert bench_records.recompute_table(s) is None  # no record timed the recompute levels
    assert "On NVIDIA H100 80GB HBM3:" in bench_records.targets_text(s)
    fig = bench_records.speedup_figure(bench_records.speedup_table(s))
    rings = {
        ax.get_title(): [len(c.get_offsets()) for c in ax.collections if c.get_label() == "judged by claim 5"]
        for ax in fig.axes
        if ax.get_visible()
    }
    # one panel per device; none of these records measured the load and the per-step times, so none is judged
    # or ringed (test_judged_records_are_the_ringed_records_of_the_speedup_table rings one)
    assert rings == {"NVIDIA H100 80GB HBM3": [0], "cpu-x": [0], "cpu-old": [0]}
    busy = record("cpu-busy", shares)
    write_json(
        tmp_path / "bench" / "cpu" / "busy" / "r.json",
        {**busy, "provenance": {**busy["provenance"], "background_load_cores": 1.5}},
    )
    table = bench_records.speedup_table(s)
    assert table.set_index("device").loc["cpu-busy", "busy"]  # listed in the table, with its load
    titles = {ax.get_title() for ax in bench_records.speedup_figure(table).axes if ax.get_visible()}
    assert titles == {"NVIDIA H100 80GB HBM3", "cpu-x", "cpu-old"}  # but not drawn
    write_json(tmp_path / "bench" / "cpu" / "auto" / "r.json", {**record("cpu-auto", shares), "variant": "autotuned"})
    table = bench_records.speedup_table(s)
    titles = {ax.get_title() for ax in bench_records.speedup_figure(table).axes if ax.get_visible()}
    assert "cpu-auto" in set(table["device"]) and "cpu-auto" not in titles  # the figure draws the training setting only
    glossary = bench_records.variants_text()
    assert all(f"- *{name}*: " in glossary for name in bench.VARIANTS) and "x86_64" in glossary
    text = bench.summary(record("NVIDIA H100 80GB HBM3", None))
    assert "speedup 1.30x against the same dense variant" in text and "activation memory low-rank/dense 0.67x" in text
    assert "train step vs the best dense" not in text  # one dense variant timed: no best-dense target
    (row,) = bench_records.efficiency_table(s).itertuples()  # the answer: one network, from one machine (cpu-x)
    assert row.vs_best == "not timed" and row.vs_same == "1.30x (median; no per-step times)" and row.recompute == "off"
    (mem,) = bench_records.memory_table(s).itertuples()
    assert mem.activation == 0.67 and mem.params == 0.5 and pd.isna(mem.peak_step) and pd.isna(mem.optimizer)


def test_the_tensorly_torch_reference_runs_the_same_network(tmp_path):
    """Same ranks, same outputs shape; the ratios are consistent with the step times in the record."""
    import torch

    s = bench.BenchSettings(model="resnet20", format="tucker2", flops_ratio=2.0, device="cpu", batch_size=2, steps=1, warmup=0)
    torch.manual_seed(0)
    import tensorly

    from elrt_core import lowrank, models

    low = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=2.0, init="scratch")
    backend = tensorly.get_backend()
    ref = bench.tltorch_model(low)
    assert tensorly.get_backend() == backend  # importing tltorch must not switch every later decomposition
    ours = {n: m.ranks for n, m in low.named_modules() if isinstance(m, lowrank.Tucker2Conv2d)}
    import tltorch

    theirs = {n: m for n, m in ref.named_modules() if isinstance(m, tltorch.FactorizedConv)}
    assert set(ours) == set(theirs)
    for name, (r1, r2) in ours.items():
        assert tuple(theirs[name].rank[:2]) == (r2, r1)
    with tensorly.backend_context("pytorch"):
        assert ref(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    r = bench.reference_speedup(s)
    assert tensorly.get_backend() == backend
    t = r["train_step_ms"]
    assert r["ours_vs_reference"] == pytest.approx(t["reference"] / t["ours"])
    assert r["ours_vs_dense"] == pytest.approx(t["dense"] / t["ours"]) and "tensorly-torch" in r["reference"]


def test_a_speedup_timed_with_a_penalty_gets_its_own_record_name():
    from elrt_core.bench import BenchSettings, record_name

    plain = BenchSettings(model="resnet20", format="tucker2", flops_ratio=2.0, batch_size=128, variant="channels_last")
    assert record_name(plain) == "resnet20-tucker2-2x-b128-channels_last.json"
    with_so = BenchSettings(
        model="resnet20", format="tucker2", flops_ratio=2.0, batch_size=128, variant="channels_last", reg="so"
    )
    assert record_name(with_so) == "resnet20-tucker2-2x-so-b128-channels_last.json"  # never overwrites the plain record
    assert record_name(with_so, "regularizers") == "resnet20-regularizers-b128-channels_last.json"
