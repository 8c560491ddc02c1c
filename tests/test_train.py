"""Training engine: a tiny real CPU run, resume equivalence, NaN guard, DDP with gloo."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY

from elrt_core import records
from elrt_core.config import ConfigError, RunOptions, TrainConfig
from elrt_core.train import TrainingDiverged, checkpoint, fit, loop, run_folder
from elrt_core.train.schedules import lr_factor, reg_factor


def _options(tmp_path, cifar10_dir, name="run", **kw):
    return RunOptions(out=tmp_path / name, device="cpu", data_dir=cifar10_dir, quiet=True, profile="smoke", **kw)


@pytest.mark.slow
def test_tiny_low_rank_run_writes_a_complete_record(tmp_path, cifar10_dir):
    config = TrainConfig(**TINY, format="tucker2", flops_ratio=2.0, reg="so", reg_weight=1e-3)
    rec = fit(config, _options(tmp_path, cifar10_dir))
    saved = json.loads((tmp_path / "run" / "record.json").read_text())
    assert saved == json.loads(json.dumps(rec))
    assert saved["config_hash"] == config.hash and saved["status"] == "finished"
    hist = saved["metrics"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2]
    for key in ("train_loss", "reg_loss", "test_loss", "test_top1", "lr", "epoch_seconds", "images_per_s"):
        assert all(key in h for h in hist)
    assert hist[0]["reg_loss"] > 0 and saved["metrics"]["test_images"] == 100
    assert abs(saved["cost"]["macs_ratio"] / 2 - 1) <= 0.02
    assert any(layer["format"] == "tucker2" for layer in saved["cost"]["layers"])
    prov = saved["provenance"]
    for key in (
        "commit",
        "dirty",
        "versions",
        "device",
        "device_name",
        "cpu_count",
        "seed",
        "profile",
        "started",
        "ended",
        "wall_seconds",
    ):
        assert key in prov
    assert prov["versions"]["torch"] == torch.__version__.split("+")[0] or prov["versions"]["torch"] in torch.__version__
    assert (tmp_path / "run" / "weights.pt").exists() and (tmp_path / "run" / "checkpoint.pt").exists()
    assert records.read(tmp_path / "run").config == config
    # every epoch says how orthogonal each factor set is; U2 is the penalized one
    for h in hist:
        assert set(h["orthogonality"]) == {"U1", "U2"}
        assert {"so", "so_per_rank", "srip", "mc", "sq_norm", "layers"} <= set(h["orthogonality"]["U2"])
    assert hist[-1]["reg_loss"] == pytest.approx(1e-3 * hist[-1]["orthogonality"]["U2"]["so"], rel=0.5)


@pytest.mark.slow
def test_a_run_without_regularizer_logs_orthogonality_and_frobenius_decay(tmp_path, cifar10_dir, tiny_dense_run):
    config = TrainConfig(**{**TINY, "epochs": 1}, format="tucker2", flops_ratio=2.0, factor_decay="frobenius")
    rec = fit(config, _options(tmp_path, cifar10_dir))
    (row,) = rec["metrics"]["history"]
    assert row["reg_loss"] == 0 and row["reg_weight"] == 0
    assert row["orthogonality"]["U2"]["so"] > 0 and row["orthogonality"]["U1"]["layers"] == 18
    assert row["decay_loss"] > 0  # weight_decay / 2 * sum ||K||^2, added to the loss
    dense = records.read(tiny_dense_run)  # a dense run logs neither
    assert "orthogonality" not in dense.history[0] and "decay_loss" not in dense.history[0]


def test_factor_decay_decides_which_weights_sgd_decays():
    def decayed(**kw):
        config = TrainConfig(**TINY, format="tucker2", flops_ratio=2.0, **kw)
        model = loop.build_model(config)
        groups = loop._param_groups(model, config)
        ids = {id(p) for p in groups[0]["params"]}
        layer = next(m for m in model.modules() if hasattr(m, "factor_weights"))
        return {name: id(w) in ids for name, w in [*layer.factor_weights().items(), ("core", layer.core.weight)]}

    assert decayed() == {"U1": True, "U2": True, "core": True}
    assert decayed(no_decay_on=("U2",)) == {"U1": True, "U2": False, "core": True}
    assert decayed(factor_decay="none") == {"U1": False, "U2": False, "core": False}
    assert decayed(factor_decay="frobenius") == {"U1": False, "U2": False, "core": False}


def test_spectral_init_is_the_best_fit_of_the_seeds_dense_initialization():
    from elrt_core import lowrank, models

    config = TrainConfig(**TINY, format="matrix", flops_ratio=2.0, init="spectral", seed=3)
    model = loop.build_model(config)
    torch.manual_seed(3)
    dense = models.get("resnet20")
    layer, weight = model.layer1[0].conv1, dense.layer1[0].conv1.weight.detach().double()
    (r,) = layer.ranks
    u, s, vt = torch.linalg.svd(weight.reshape(weight.shape[0], -1), full_matrices=False)
    best = (u[:, :r] * s[:r]) @ vt[:r]
    assert torch.allclose(layer.kernel().detach().double().reshape(best.shape), best, atol=1e-5)
    # the factors are balanced, U sqrt(S) and sqrt(S) V^T, and differ from a scratch draw
    scratch = loop.build_model(config.replace(init="scratch"))
    assert not torch.equal(scratch.layer1[0].conv1.kernel(), layer.kernel())
    assert isinstance(layer, lowrank.MatrixConv2d)


@pytest.mark.slow
def test_resume_gives_exactly_the_uninterrupted_result(tmp_path, cifar10_dir, monkeypatch):
    config = TrainConfig(**{**TINY, "epochs": 3}, format="tucker2", flops_ratio=2.0, reg="srip", reg_weight=1e-2)
    full = fit(config, _options(tmp_path, cifar10_dir, "full"))

    calls = {"n": 0}
    real_evaluate = loop.evaluate

    def crash_in_third_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(config, _options(tmp_path, cifar10_dir, "resumed"))
    assert not (tmp_path / "resumed" / "record.json").exists()
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    resumed = fit(config, _options(tmp_path, cifar10_dir, "resumed", resume=True))

    assert resumed["provenance"]["resumed"] is True
    strip = lambda h: {k: v for k, v in h.items() if k not in ("epoch_seconds", "images_per_s")}  # noqa: E731
    assert [strip(h) for h in resumed["metrics"]["history"]] == [strip(h) for h in full["metrics"]["history"]]
    a = torch.load(tmp_path / "full" / "weights.pt")
    b = torch.load(tmp_path / "resumed" / "weights.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_run_folder_is_never_overwritten_silently(tmp_path, cifar10_dir, tiny_dense_run):
    one = TrainConfig(**{**TINY, "epochs": 1})
    shutil.copytree(tiny_dense_run, tmp_path / "run")  # the finished run of this config
    first = json.loads((tmp_path / "run" / "record.json").read_text())
    assert fit(one, _options(tmp_path, cifar10_dir)) == first  # reused, not retrained
    with pytest.raises(run_folder.RunFolderError, match="holds the record of another run"):
        fit(one.replace(seed=1), _options(tmp_path, cifar10_dir, resume=True))
    (tmp_path / "run" / "record.json").unlink()  # an interrupted run: only its checkpoint is left
    with pytest.raises(run_folder.RunFolderError, match="checkpoint of this config at epoch 1: pass --resume"):
        fit(one, _options(tmp_path, cifar10_dir))
    assert (tmp_path / "run" / "checkpoint.pt").exists()  # refused, not deleted
    with pytest.raises(run_folder.RunFolderError, match="belongs to config"):
        fit(one.replace(seed=1), _options(tmp_path, cifar10_dir, resume=True))
    again = fit(one.replace(seed=1), _options(tmp_path, cifar10_dir, force=True))
    assert again["config"]["seed"] == 1 and records.read(tmp_path / "run").config.seed == 1


def test_a_locked_run_folder_is_refused(tmp_path, cifar10_dir):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / run_folder.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(run_folder.RunFolderError, match="another process is training"):
            fit(TrainConfig(**{**TINY, "epochs": 1}), _options(tmp_path, cifar10_dir))


def test_the_cli_names_a_busy_run_folder_with_its_own_exit_status(tmp_path, cifar10_dir, capsys):
    import fcntl

    from elrt_core.cli import main

    out = tmp_path / "run"
    out.mkdir()
    with open(out / run_folder.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        status = main(["train", "--epochs", "1", "--subset", "100", "--out", str(out), "--data-dir", str(cifar10_dir)])
    assert status == run_folder.BUSY_EXIT_STATUS
    assert capsys.readouterr().err.startswith("elrt: busy: another process is training in")


def test_a_corrupt_checkpoint_is_named(tmp_path, cifar10_dir):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(run_folder.RunFolderError, match="checkpoint.pt cannot be read as a checkpoint"):
        fit(TrainConfig(**{**TINY, "epochs": 1}), _options(tmp_path, cifar10_dir, resume=True))


@pytest.mark.slow
def test_nan_loss_gives_a_diverged_record_and_keeps_the_last_good_checkpoint(tmp_path, cifar10_dir, monkeypatch):
    config = TrainConfig(**TINY, format="tucker2", flops_ratio=2.0, reg="so", reg_weight=1e-3)
    real_penalty = loop.penalty
    calls = {"n": 0}

    def nan_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        value = real_penalty(*args, **kwargs)
        return value * float("nan") if calls["n"] > 4 else value  # 4 steps per epoch

    monkeypatch.setattr(loop, "penalty", nan_in_second_epoch)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*last good checkpoint \(epoch 1\)"):
        fit(config, _options(tmp_path, cifar10_dir))
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    rec = records.read(tmp_path / "run")
    assert rec.status == "diverged" and rec.metrics["divergence"]["epoch"] == 2 and len(rec.history) == 1
    assert not (tmp_path / "run" / "weights.pt").exists()
    assert records.find(config, tmp_path) is None


@pytest.mark.slow
def test_non_finite_parameters_are_caught_before_anything_is_written(tmp_path, cifar10_dir, monkeypatch):
    """A finite loss with an infinite batch-norm buffer (the run of the reviewer's --lr 1e6 probe)."""
    config = TrainConfig(**{**TINY, "epochs": 1})
    real_row = loop._epoch_row

    def poison(config, state, *args, **kwargs):
        row = real_row(config, state, *args, **kwargs)
        next(b for n, b in state.model.named_buffers() if n.endswith("running_var")).fill_(float("inf"))
        return row

    monkeypatch.setattr(loop, "_epoch_row", poison)
    with pytest.raises(TrainingDiverged, match="non-finite tensors .*running_var"):
        fit(config, _options(tmp_path, cifar10_dir))
    assert records.read(tmp_path / "run").status == "diverged"
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "weights.pt").exists()


@pytest.mark.slow
def test_validation_split_is_held_out_of_training(tmp_path, cifar10_dir):
    config = TrainConfig(**{**TINY, "epochs": 1, "val_split": 100})
    rec = fit(config, _options(tmp_path, cifar10_dir))
    m = rec["metrics"]
    assert (m["train_images"], m["val_images"], m["test_images"]) == (200, 100, 100)
    assert "val_top1" in m["history"][0] and m["final_val_top1"] == m["history"][0]["val_top1"]


@pytest.mark.slow
def test_ddp_two_gloo_processes_agree_and_write_one_record(tmp_path, cifar10_dir):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "elrt_core.cli",
        "train",
        "--model",
        "resnet20",
        "--format",
        "tucker2",
        "--flops-ratio",
        "2",
        "--reg",
        "so",
        "--epochs",
        "1",
        "--batch-size",
        "40",
        "--subset",
        "160",
        "--test-subset",
        "100",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--data-dir",
        str(cifar10_dir),
        "--out",
        str(out),
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = list(Path(tmp_path).rglob("record.json"))
    assert recs == [out / "record.json"]
    rec = json.loads(recs[0].read_text())
    assert rec["provenance"]["world_size"] == 2 and rec["provenance"]["replicas_agree"] is True
    assert rec["metrics"]["test_images"] == 100  # the two test shards add up to the whole test set
    assert proc.stdout.count("final test top-1") == 1  # only rank 0 reports


def test_lr_schedules():
    assert lr_factor("cosine", 0, 100) == pytest.approx(1.0)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("cosine", 5, 100, warmup_steps=10) == pytest.approx(0.6)
    assert [lr_factor("step", s, 100) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    assert lr_factor("onecycle", 0, 100) == pytest.approx(1 / 25)
    assert lr_factor("onecycle", 30, 100) == pytest.approx(1.0)
    assert lr_factor("onecycle", 100, 100) == pytest.approx(1 / 25e4)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor("linear", 0, 10)


def test_reg_schedules():
    assert reg_factor("constant", 150, 200) == 1.0
    assert [reg_factor("bansal", e, 200) for e in (0, 19, 20, 50, 70, 119, 120)] == [1.0, 1.0, 1e-2, 1e-3, 1e-5, 1e-5, 0.0]


@pytest.mark.slow
def test_run_files_are_readable_by_others_and_no_tmp_litter_survives(tmp_path, cifar10_dir):
    import stat

    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.pt.abc.tmp").write_bytes(b"half a checkpoint from a killed process")
    fit(TrainConfig(**{**TINY, "epochs": 1}), _options(tmp_path, cifar10_dir))
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    for name in ("record.json", "weights.pt", "checkpoint.pt"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


@pytest.mark.slow
def test_the_compression_baseline_starts_from_the_decomposed_trained_dense_run(tmp_path, cifar10_dir, tiny_dense_run):
    dense = TrainConfig(**{**TINY, "epochs": 1})
    shutil.copytree(tiny_dense_run, tmp_path / dense.name)  # the finished dense run, in a folder of finished runs
    compress = TrainConfig(**{**TINY, "epochs": 1}, format="matrix", flops_ratio=2.0, init=f"decompose:{dense.hash}")
    assert compress.name.startswith("resnet20-matrix-2xflops-compressed-")
    start = loop.build_model(compress, dense_runs=tmp_path)
    trained = torch.load(tmp_path / dense.name / "weights.pt", weights_only=True)
    weight = trained["layer1.0.conv1.weight"].double()
    u, s, vt = torch.linalg.svd(weight.reshape(weight.shape[0], -1), full_matrices=False)
    (r,) = start.layer1[0].conv1.ranks
    best = (u[:, :r] * s[:r]) @ vt[:r]  # the Eckart-Young fit of the trained kernel, not of a fresh draw
    assert torch.allclose(start.layer1[0].conv1.kernel().detach().double().reshape(best.shape), best, atol=1e-5)
    assert torch.equal(start.bn1.weight.detach(), trained["bn1.weight"])  # the dense layers keep their trained weights
    rec = fit(compress, _options(tmp_path, cifar10_dir, name=compress.name))
    assert rec["status"] == "finished" and rec["config"]["init"] == f"decompose:{dense.hash}"
    missing = compress.replace(init="decompose:" + "0" * 16)
    with pytest.raises(ConfigError, match="no finished dense run 0000000000000000"):
        loop.build_model(missing, dense_runs=tmp_path)
    (tmp_path / dense.name / "weights.pt").unlink()  # a record committed without its weights
    with pytest.raises(ConfigError, match=f"{dense.name} has no weights.pt: train that dense run first"):
        loop.build_model(compress, dense_runs=tmp_path)


def test_a_profile_resolves_the_compression_baseline_to_its_dense_run_of_the_same_seed():
    from elrt_core import profiles

    p = profiles.load("cpu-full")
    config = p.config("compress", "resnet20", 2.0, seed=2)
    assert config.init == f"decompose:{p.config('dense', 'resnet20', 2.0, seed=2).hash}"
    assert (config.epochs, config.lr, config.schedule, config.format) == (5, 0.01, "cosine", "tucker2")
