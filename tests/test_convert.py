"""Model conversion: budgets met within 2%, input untouched, reports, bad input."""

import pytest
import torch

from elrt_core import cost, lowrank, models
from elrt_core.lowrank import LowRankConv2d, convert, report

MODELS = ["resnet20", "resnet56", "vgg16"]


@pytest.fixture(scope="module")
def dense():
    torch.manual_seed(0)
    return {name: models.get(name) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fmt", list(lowrank.FORMATS))
@pytest.mark.parametrize("kind,ratio", [("flops_ratio", 2), ("flops_ratio", 3), ("params_ratio", 2)])
def test_budget_is_met_within_two_percent(dense, name, fmt, kind, ratio):
    m = dense[name]
    lr = convert(m, fmt, init="scratch", **{kind: ratio})
    d, c = cost.count(m), cost.count(lr)
    got = d.macs / c.macs if kind == "flops_ratio" else d.params / c.params
    assert abs(got / ratio - 1) <= 0.02, got
    assert isinstance(lr.conv1 if name != "vgg16" else lr.features[0], torch.nn.Conv2d)  # first conv stays dense


def test_input_model_is_not_modified(dense):
    m = dense["resnet20"]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    lr = convert(m, "tucker2", flops_ratio=2)
    assert not any(isinstance(x, LowRankConv2d) for x in m.modules())
    assert any(isinstance(x, LowRankConv2d) for x in lr.modules())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_full_rank_decomposition_preserves_the_function(dense):
    m = dense["resnet20"].eval()
    lr = convert(m, "tucker2", ranks=1.0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (lr(x) - m(x)).abs().max().item() < 1e-3


def test_report_matches_counted_cost(dense):
    m = dense["resnet20"]
    lr = convert(m, "matrix", flops_ratio=3, init="scratch")
    rep = report(lr)
    assert rep.macs == cost.count(lr).macs and rep.dense_macs == cost.count(m).macs
    assert rep.dense_params == cost.count(m).params
    frame = rep.to_frame()
    assert len(frame) == 19 and (frame["format"] == "matrix").sum() == 18
    assert "whole network" in str(rep) and "kept dense" in str(rep)


def test_explicit_ranks(dense):
    m = dense["resnet20"]
    lr = convert(m, "tucker2", ranks={"layer1.0.conv1": (4, 6)})
    assert lr.layer1[0].conv1.ranks == (4, 6)
    assert isinstance(lr.layer1[0].conv2, torch.nn.Conv2d)
    half = convert(m, "tucker2", ranks=0.5, init="scratch")
    assert half.layer3[0].conv1.ranks == (16, 32)


def test_grouped_convs_stay_dense_and_are_reported():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
        torch.nn.Conv2d(16, 32, 3, padding=1),
    )
    lr = convert(net, "tucker2", ranks=(4, 8))
    rep = report(lr)
    notes = dict(zip(rep.to_frame()["name"], rep.to_frame()["note"]))
    assert "groups=16" in notes["1"] and isinstance(lr[2], LowRankConv2d)


def test_skip_patterns(dense):
    lr = convert(dense["resnet20"], "tucker2", flops_ratio=2, skip=["conv1", "layer3.*"], init="scratch")
    assert isinstance(lr.layer3[2].conv2, torch.nn.Conv2d) and isinstance(lr.layer1[0].conv1, LowRankConv2d)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"flops_ratio": 1.0}, "flops_ratio must be a number > 1"),
        ({"flops_ratio": 0.5}, "got 0.5"),
        ({"params_ratio": -2}, "params_ratio must be"),
        ({}, "exactly one of"),
        ({"flops_ratio": 2, "ranks": 0.5}, "exactly one of"),
        ({"flops_ratio": 500}, "largest reachable ratio"),
        ({"ranks": {"layer1.0.conv1": (0, 4)}}, r"invalid ranks \(0, 4\)"),
        ({"ranks": {"layer1.0.conv1": (17, 4)}}, "r_in in 1..16"),
        ({"ranks": {"nonexistent": (2, 2)}}, "nonexistent"),
        ({"ranks": 1.5}, "rank fraction must be in"),
    ],
)
def test_bad_input_raises_value_error(dense, kwargs, match):
    with pytest.raises(ValueError, match=match):
        convert(dense["resnet20"], "tucker2", **kwargs)


def test_unknown_format_and_nothing_to_convert(dense):
    with pytest.raises(ValueError, match="unknown low-rank format 'svd'.*tucker2"):
        convert(dense["resnet20"], "svd", flops_ratio=2)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        convert(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10)), "tucker2", flops_ratio=2)
    with pytest.raises(ValueError, match="nothing to convert"):
        convert(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), "tucker2", flops_ratio=2)


def test_imagenet_resnet50_converts():
    m = models.get("resnet50", num_classes=1000)
    lr = convert(m, "tucker2", flops_ratio=2, input_shape=(3, 224, 224), init="scratch")
    ratio = cost.count(m, (3, 224, 224)).macs / cost.count(lr, (3, 224, 224)).macs
    assert abs(ratio / 2 - 1) <= 0.02


# ---- to_dense: the inverse of convert ----------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["tucker2", "cp"])
def test_to_dense_gives_an_equivalent_dense_resnet20(dense, fmt):
    m = dense["resnet20"]
    lr = convert(m, fmt, flops_ratio=2, init="scratch").eval()
    back = lowrank.to_dense(lr)
    assert not any(isinstance(x, LowRankConv2d) for x in back.modules())
    assert any(isinstance(x, LowRankConv2d) for x in lr.modules())  # the input is not modified
    assert [n for n, _ in back.named_parameters()] == [n for n, _ in m.named_parameters()]
    assert cost.count(back).macs == cost.count(m).macs and not back.training
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(back(x), lr(x), atol=1e-4)


@pytest.mark.slow
def test_resnet18_decompose_conversion_is_fast_quiet_and_inverts():
    """torchvision ResNet-18 (ImageNet shapes) with init="decompose": well under a minute of CPU time on
    one BLAS thread (282 s with 100 tensorly HOOI iterations per layer), no warning, no progress bar
    off a terminal; to_dense of the result computes the same function."""
    import time
    import warnings

    torch.manual_seed(0)
    m = models.get("resnet18")
    cpu = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lr = convert(m, "tucker2", flops_ratio=2, input_shape=(3, 224, 224))
    assert time.process_time() - cpu < 60
    assert sum(isinstance(x, LowRankConv2d) for x in lr.modules()) == 19
    back = lowrank.to_dense(lr).eval()
    lr.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = lr(x)
        assert torch.allclose(back(x), ref, atol=1e-4 * ref.abs().max().item())


def test_progress_bar_only_when_asked_or_on_a_terminal(dense, monkeypatch, capsys):
    import importlib

    monkeypatch.setattr(importlib.import_module("elrt_core.lowrank.convert"), "PROGRESS_DELAY_S", 0.0)
    net = dense["resnet20"]
    for progress, init, shown in (
        (True, "decompose", True),
        (None, "decompose", False),
        (False, "decompose", False),
        (True, "scratch", False),
    ):
        convert(net, "tucker2", ranks=0.5, init=init, progress=progress)
        err = capsys.readouterr().err
        assert ("tucker2 decomposition" in err) == shown, (progress, init)
