"""Shared pytest fixtures."""

import os
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


@pytest.fixture(scope="session")
def browser_ready() -> None:
    """Headless Chromium and Playwright are here, or the test is skipped saying so in one line.

    Where the browser check must run (CI: ``$CI`` or ``$ELRT_REQUIRE_BROWSER`` set, as .ci/run does,
    which installs Chromium first), a missing browser fails the test instead of skipping it.
    """
    import book_browser

    why = book_browser.missing_requirement()
    if why is None:
        return
    if os.environ.get("ELRT_REQUIRE_BROWSER") or os.environ.get("CI"):
        pytest.fail(f"the browser check of the book must run here, but {why}")
    pytest.skip(f"browser check of the book skipped: {why}")
