"""Cost accounting: analytic formulas, FlopCounterMode cross-check, known model sizes."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from elrt_core import cost, lowrank, models


def _flop_counter_macs(model, input_shape):
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, *input_shape))
    return fc.get_total_flops() // 2  # FlopCounterMode counts 2 FLOPs per multiply-accumulate


def test_dense_conv_formula():
    conv = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=True)
    c = cost.count(conv, (16, 32, 32))
    assert c.macs == 16 * 16 * 32 * 16 * 9
    assert c.params == 32 * 16 * 9 + 32


def test_linear_and_grouped_conv():
    assert cost.count(nn.Linear(64, 10), (1, 1, 64)).macs == 640
    g = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    assert cost.count(g, (8, 4, 4)).macs == 4 * 4 * 8 * 1 * 9


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "vgg16"])
def test_count_agrees_with_flop_counter_dense(name):
    m = models.get(name)
    assert cost.count(m).macs == _flop_counter_macs(m, (3, 32, 32))


@pytest.mark.parametrize("fmt", list(lowrank.FORMATS))
def test_count_agrees_with_flop_counter_low_rank(fmt):
    m = lowrank.convert(models.get("resnet20"), fmt, flops_ratio=2, init="scratch")
    assert cost.count(m).macs == _flop_counter_macs(m, (3, 32, 32))


def test_known_model_sizes():
    """ResNet-20: 0.27M params (He et al. 2016); VGG-16 CIFAR: 14.7M params."""
    r20 = cost.count(models.get("resnet20"))
    assert r20.params == 269_722 and r20.macs == 40_551_040
    assert cost.count(models.get("resnet56")).params == 853_018
    assert abs(cost.count(models.get("vgg16")).params - 14.72e6) < 0.01e6


def test_count_restores_training_mode_and_lists_layers():
    m = models.get("resnet20").train()
    c = cost.count(m)
    assert m.training and all(mod.training for mod in m.modules())
    assert sum(layer.macs for layer in c.layers) == c.macs
    assert len(c.layers) == 20  # 19 convs + the classifier


def test_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        cost.count(models.get("resnet20"), (32, 32))
