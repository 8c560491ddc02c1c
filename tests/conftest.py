"""Shared pytest fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The complete, checksum-verified CIFAR-10 in the png layout, at <repo>/../shared/data/cifar10."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
    if not (path / "data_batch_1.png").is_file():
        pytest.fail(f"the shared CIFAR-10 copy is missing: expected the png layout at {path} "
                    "(see shared/data/cifar10/README.md)")
    return path


@pytest.fixture(scope="session")
def cifar10(cifar10_dir: Path):
    """CIFAR-10 loaded from the shared copy (elrt_core.data.DataSet), once per test session."""
    from elrt_core.data import load

    return load("cifar10", cifar10_dir, download=False)
