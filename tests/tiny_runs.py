"""Helpers of the training, batch and cluster tests: a tiny config, a profile of tiny runs, a run's epochs,
waiting for a condition, a child process that takes signals as from a terminal."""

import dataclasses
import signal
import time
from pathlib import Path

import pytest
import torch

from elrt_core import profiles
from elrt_core.profiles import Profile, RunGroup
from elrt_core.train import checkpoint

TINY = dict(model="resnet20", epochs=2, batch_size=50, subset=200, test_subset=100, lr=0.05, schedule="cosine", weight_decay=5e-4)
"""A training config of seconds: 200 training and 100 test images of real CIFAR-10, 4 steps an epoch."""


def tiny(*groups: RunGroup, epochs: int = 4) -> Profile:
    """The smoke profile shrunk to seconds a run (128 training, 64 test images), with ``groups`` as its runs."""
    smoke = profiles.load("smoke")
    train = {**smoke.train, "subset": 128, "test_subset": 64, "val_split": 0, "epochs": epochs}
    return dataclasses.replace(smoke, train=train, runs=groups)


ENDLESS_EPOCHS = 10_000
"""Epochs of :func:`endless`: hours of training, so a test's signal always finds its run still busy."""


def endless() -> Profile:
    """The smoke profile with :data:`ENDLESS_EPOCHS` epochs, for the tests that stop a batch mid-run."""
    smoke = profiles.load("smoke")
    return dataclasses.replace(smoke, train={**smoke.train, "epochs": ENDLESS_EPOCHS})


def epochs_done(out: Path) -> int:
    """The epochs the checkpoint in run folder ``out`` holds (0 without one, or while it is replaced)."""
    try:
        return torch.load(out / checkpoint.CHECKPOINT_FILE, weights_only=False)["epoch"]
    except (OSError, EOFError, RuntimeError, KeyError):
        return 0


def wait_for(condition, timeout: float, what: str, step: float = 0.05):
    """Poll ``condition`` until it is true (its value is returned); the test fails after ``timeout`` s."""
    t0 = time.time()
    while not (got := condition()):
        if time.time() - t0 > timeout:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(step)
    return got


def terminal_signals() -> None:
    """``preexec_fn`` of a child process that a test signals: SIGINT, SIGTERM and SIGHUP at their defaults,
    as a command typed in a terminal has them, even where the suite itself ignores them (``nohup make test &``
    starts it with SIGINT and SIGHUP ignored, which its children would inherit)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
