"""A machine without the shared data copy: the suite still runs; data tests skip with one line saying how."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_without_data_the_data_tests_skip_with_the_fix_and_the_rest_pass(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("ELRT_DATA_DIR", "ELRT_REQUIRE_DATA")}
    env |= {"ELRT_SHARED_DATA": str(tmp_path / "no-shared"), "ELRT_NO_FETCH": "1"}
    if (ROOT / "data" / "cifar10").exists() or any((ROOT / "data").glob("cifar-10-*")):
        pytest.skip("this checkout holds a copy in ./data, so it cannot play a fresh machine")  # never the case in CI
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/test_config.py",
            "tests/test_cli.py::test_data_check_on_the_real_copy",
            "tests/test_stats.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    assert "1 skipped" in out and "real CIFAR-10 not found: set ELRT_DATA_DIR" in out and "elrt data fetch" in out
    assert "data: NONE" in out
