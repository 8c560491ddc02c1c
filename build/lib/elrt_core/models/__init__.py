"""Dense architectures of the study, by name (:func:`get`)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from . import cifar_resnet, vgg

__all__ = ["get", "MODELS", "input_shape"]


def _torchvision(name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int = 10) -> nn.Module:
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)

    return build


MODELS: dict[str, Callable[[int], nn.Module]] = {
    "resnet20": cifar_resnet.resnet20,
    "resnet32": cifar_resnet.resnet32,
    "resnet44": cifar_resnet.resnet44,
    "resnet56": cifar_resnet.resnet56,
    "resnet110": cifar_resnet.resnet110,
    "vgg16": vgg.vgg16,
    "resnet18": _torchvision("resnet18"),
    "resnet50": _torchvision("resnet50"),
}
"""Builders by name. ``resnet18``/``resnet50`` are torchvision's ImageNet models (224x224 inputs)."""

_IMAGENET = {"resnet18", "resnet50"}


def get(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialized dense model ``name`` (see :data:`MODELS`) with ``num_classes`` outputs."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return MODELS[name](num_classes)


def input_shape(name: str) -> tuple[int, int, int]:
    """The input shape ``(C, H, W)`` model ``name`` is meant for: CIFAR 32x32 or ImageNet 224x224."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    return (3, 224, 224) if name in _IMAGENET else (3, 32, 32)
