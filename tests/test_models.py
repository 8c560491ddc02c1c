"""Dense architectures."""

import pytest
import torch

from elrt_core import models


@pytest.mark.parametrize("name,depth_convs", [("resnet20", 19), ("resnet32", 31), ("resnet56", 55), ("vgg16", 13)])
def test_cifar_models_shapes(name, depth_convs):
    m = models.get(name, num_classes=100)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert sum(isinstance(x, torch.nn.Conv2d) for x in m.modules()) == depth_convs


def test_option_a_shortcut_has_no_parameters():
    m = models.get("resnet20")
    assert sum(p.numel() for p in m.layer2[0].shortcut.parameters()) == 0


def test_imagenet_models():
    assert models.input_shape("resnet18") == (3, 224, 224) and models.input_shape("resnet20") == (3, 32, 32)
    m = models.get("resnet18", num_classes=7)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_bad_names():
    with pytest.raises(ValueError, match="unknown model 'resnet21'.*resnet20"):
        models.get("resnet21")
    with pytest.raises(ValueError, match="num_classes"):
        models.get("resnet20", num_classes=1)
