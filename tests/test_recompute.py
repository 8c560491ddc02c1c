"""Recomputation in low-rank layers (elrt_core.lowrank.recompute): bitwise-equal gradients, less kept
for backward, the switch, and training results that do not depend on it."""

import contextlib
import copy
import itertools

import pytest
import torch
from torch import nn

from elrt_core import bench, lowrank, models
from elrt_core.lowrank import FORMATS, Recomputing, recompute

CASES = list(itertools.product(FORMATS, ["channels_last", "contiguous"], [True, False], [1, 2], ["train", "eval"]))


def _layer(fmt: str, stride: int, bias: bool, memory: str) -> tuple[nn.Module, torch.Tensor]:
    """A low-rank layer 16 -> 32 (3x3) at a third of its full ranks with a batch norm and ReLU after it
    (what a ResNet runs), and an input batch, in ``memory`` format."""
    torch.manual_seed(0)
    cls = FORMATS[fmt]
    ranks = tuple(max(1, f // 3) for f in cls.max_ranks(16, 32, (3, 3)))
    block = nn.Sequential(cls(16, 32, 3, ranks, stride=stride, padding=1, bias=bias), nn.BatchNorm2d(32), nn.ReLU())
    if bias:
        nn.init.normal_(block[0].convs()[-1].bias)
    x = torch.randn(8, 16, 12, 12)
    if memory == "channels_last":
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return block, x


def _gradients(block: nn.Module, x: torch.Tensor, level: str, bf16: bool = False) -> list[torch.Tensor]:
    """Output, input gradient and every parameter gradient of a weighted sum of ``block(x)``; ``bf16``:
    forward under bfloat16 autocast (backward outside it, as training runs it)."""
    recompute.set_recompute(block, level)
    block.zero_grad(set_to_none=True)
    xi = x.detach().clone().requires_grad_(True)
    with lowrank.recomputing(block), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = block(xi)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return [y.detach(), xi.grad, *(p.grad for p in block.parameters())]


@pytest.mark.parametrize("fmt,memory,bias,stride,mode", CASES)
def test_recompute_gradients_are_bitwise_equal_to_the_plain_chain(fmt, memory, bias, stride, mode):
    block, x = _layer(fmt, stride, bias, memory)
    block.train(mode == "train")
    plain = _gradients(block, x, "off")
    for level in ("chain", "all"):
        got = _gradients(block, x, level)
        assert len(got) == len(plain) and all(g is not None for g in got)
        assert all(torch.equal(a, b) for a, b in zip(plain, got)), level


def _saved_bytes(block: nn.Module, x: torch.Tensor, level: str) -> int:
    recompute.set_recompute(block, level)
    return bench.activation_bytes(block, x.detach().requires_grad_(True))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_recompute_keeps_less_for_backward(fmt):
    """The layer keeps its input anyway (the input saves nothing here: it is a leaf of this test), so the
    bytes below are what the chain and the batch norm keep."""
    block, x = _layer(fmt, 1, False, "channels_last")
    off, chain, everything = (_saved_bytes(block, x, level) for level in recompute.LEVELS)
    assert off >= chain >= everything
    if fmt in ("tucker2", "cp"):  # a cheap intermediate: a (Tucker-2); a_1, a_2, a_3 (CP)
        assert chain < off
    if fmt != "cp":  # b is smaller than y; CP's b (rank 96) is larger than y (32 channels) here
        assert everything < chain


def test_a_whole_resnet_trains_bitwise_the_same_with_recompute_on_and_off():
    """Three SGD steps of Tucker-2 ResNet-20 (train mode, channels-last): every parameter and buffer equal."""
    torch.manual_seed(0)
    net = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=2, init="scratch").to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([0, 1, 2, 3])
    states = {}
    for level in recompute.LEVELS:
        model = recompute.set_recompute(copy.deepcopy(net), level)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            with lowrank.recomputing(model):
                loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        states[level] = model.state_dict()
    for level in ("chain", "all"):
        assert all(torch.equal(states["off"][k], states[level][k]) for k in states["off"]), level


def test_recompute_under_bf16_autocast_replays_the_casts():
    block, x = _layer("tucker2", 1, True, "channels_last")
    results = {level: _gradients(block, x, level, bf16=True) for level in ("off", "all")}
    assert results["off"][0].dtype == torch.bfloat16
    assert all(torch.equal(a, b) for a, b in zip(results["off"], results["all"]))


def test_a_factor_changed_in_place_before_backward_raises():
    block, x = _layer("tucker2", 1, False, "contiguous")
    recompute.set_recompute(block, "all")
    with Recomputing():
        y = block(x.requires_grad_(True))
    with torch.no_grad():
        block[0].first.weight.mul_(2)
    with pytest.raises(RuntimeError, match="modified in place between forward and backward"):
        y.sum().backward()


def test_an_output_changed_in_place_is_kept_as_it_is():
    """An in-place addition straight on the layer output, then a product that keeps it: what it keeps
    is not the layer's output any more, so nothing may rebuild it from the last conv's input."""
    torch.manual_seed(0)
    layer = lowrank.Tucker2Conv2d(8, 16, 3, (3, 3), padding=1, bias=False)
    x = torch.randn(2, 8, 6, 6)
    grads = {}
    for level in ("off", "all"):
        layer.recompute = level
        layer.zero_grad()
        with Recomputing():
            y = layer(x.requires_grad_(True)).add_(1.0)
            z = y * y
        z.sum().backward()
        grads[level] = [p.grad.clone() for p in layer.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(grads["off"], grads["all"]))


def test_set_recompute_levels_defaults_and_bad_level():
    net = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=2, init="scratch")
    layers = [m for m in net.modules() if isinstance(m, lowrank.LowRankConv2d)]
    lowrank.set_recompute(net, "off")
    assert {m.recompute for m in layers} == {"off"} and isinstance(lowrank.recomputing(net), contextlib.nullcontext)
    lowrank.set_recompute(net)  # the format's default again
    assert {m.recompute for m in layers} == {lowrank.Tucker2Conv2d.recompute}
    assert isinstance(lowrank.recomputing(models.get("resnet20")), contextlib.nullcontext)  # dense: nothing to do
    with pytest.raises(ValueError, match="unknown recompute level 'some'; allowed: off, chain, all"):
        lowrank.set_recompute(net, "some")


@pytest.mark.slow
def test_a_tiny_training_run_gives_identical_weights_with_recompute_on_and_off(tmp_path, cifar10_dir):
    from elrt_core.config import RunOptions, TrainConfig
    from elrt_core.train import fit

    config = TrainConfig(model="resnet20", epochs=1, batch_size=50, subset=100, test_subset=50, format="tucker2", flops_ratio=2.0)
    runs = {}
    for level in ("off", "all"):
        out = tmp_path / level
        rec = fit(config, RunOptions(out=out, device="cpu", data_dir=cifar10_dir, quiet=True, profile="smoke", recompute=level))
        assert rec["provenance"]["run_options"]["recompute"] == [level]
        runs[level] = torch.load(out / "weights.pt")
    assert all(torch.equal(runs["off"][k], runs["all"][k]) for k in runs["off"])


def test_elrt_train_takes_the_recompute_level_as_a_run_option(tmp_path, monkeypatch):
    """`elrt train --recompute off` reaches RunOptions (not the config: the run's identity stays the same)."""
    from elrt_core import cli
    from elrt_core.cli import train as train_command

    seen = {}

    def fake_fit(config, options):
        seen["options"], seen["config"] = options, config
        return {"metrics": {"final_test_top1": 1.0}}

    monkeypatch.setattr("elrt_core.train.fit", fake_fit)
    monkeypatch.setattr(train_command, "check_data", lambda *a: None)
    args = [
        "train",
        "--format",
        "tucker2",
        "--flops-ratio",
        "2",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--recompute",
        "off",
    ]
    assert cli.main(args) == 0
    assert seen["options"].recompute == "off" and "recompute" not in seen["config"].to_dict()
    assert cli.main([*args[:-2], "--recompute", "sometimes"]) == 2  # one line naming the allowed levels
