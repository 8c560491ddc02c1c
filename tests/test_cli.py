"""The elrt command line: bad input gives one line and exit status 2; info and data work."""

import pytest

from elrt_core.cli import main


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--model", "resnet21"], "unknown model 'resnet21'; allowed: resnet20"),
        (["train", "--format", "svd", "--flops-ratio", "2"], "unknown format 'svd'; allowed: dense, tucker2"),
        (["train", "--format", "tucker2", "--flops-ratio", "1"], "flops_ratio must be > 1"),
        (["train", "--format", "tucker2", "--flops-ratio", "2", "--reg", "ortho"], "unknown regularizer 'ortho'"),
        (["train", "--format", "tucker2", "--flops-ratio", "2", "--reg", "so", "--reg-weight", "-1"], "reg_weight must be >= 0"),
        (["train", "--epochs", "0"], "epochs must be > 0"),
        (["train", "--epochs", "abc"], "invalid int value: 'abc'"),
        (["train", "--device", "tpu"], "unknown device 'tpu'; allowed: auto, cpu, cuda"),
        (["train", "--out", "/proc/elrt-cannot-write"], "is not writable"),
        (["train", "--profile", "gpu"], "unknown profile 'gpu'"),
        (["train", "--config", "/nonexistent.yaml"], "cannot read config file"),
        (["info", "resnet21"], "unknown model 'resnet21'"),
        (["info", "resnet20", "--format", "tucker2", "--flops-ratio", "0.5"], "flops_ratio must be a number > 1"),
        (["reproduce", "--profile", "gpu"], "unknown profile 'gpu'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_one_line_exit_2(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default run folders must not land in the repo
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("elrt: error: ") and needle in err and "Traceback" not in err


def test_missing_data_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ELRT_DATA_DIR", raising=False)
    monkeypatch.setattr("elrt_core.data.sources._fetch_torchvision", _no_network)
    monkeypatch.setattr("elrt_core.data.sources._fetch_npm", _no_network)
    assert main(["train", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ELRT_DATA_DIR" in err


def _no_network(*args, **kwargs):
    from elrt_core.data.sources import _SourceFailed

    raise _SourceFailed("no network in this test")


def test_info_prints_the_cost_table(capsys):
    assert main(["info", "resnet20", "--format", "tucker2", "--flops-ratio", "2"]) == 0
    out = capsys.readouterr().out
    assert "layer3.2.conv2" in out and "whole network" in out and "(2.00" in out and "MACs" in out


def test_data_check_on_the_real_copy(cifar10_dir, capsys):
    assert main(["data", "check", "--data-dir", str(cifar10_dir)]) == 0
    assert "md5" in capsys.readouterr().out
