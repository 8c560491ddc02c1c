"""VGG-16 for CIFAR with batch norm (Simonyan & Zisserman 2015; the CIFAR variant of Liu et al. 2017,
"Network Slimming", and of the low-rank literature): 13 3x3 conv-BN-ReLU layers with five 2x2 max
pools, then one linear classifier on the 512-d feature. 14.7M parameters, 313M MACs at 32x32.
"""

from __future__ import annotations

import torch
from torch import nn

from .cifar_resnet import kaiming_init

__all__ = ["VGG", "vgg16"]

VGG16_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """VGG with BN; input ``(N, 3, 32, 32)``, output ``(N, num_classes)``."""

    def __init__(self, cfg: tuple[int | str, ...] = VGG16_CFG, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def vgg16(num_classes: int = 10) -> VGG:
    return VGG(VGG16_CFG, num_classes)
