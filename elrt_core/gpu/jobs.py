"""The work of a lent GPU machine besides training: the CUDA bench set, and the arrival of the pack.

:func:`bench` measures dense against Tucker-2 at 2x and 3x fewer MACs for ResNet-20, -56 (CIFAR
shapes) and ResNet-50 (ImageNet shapes) with :func:`elrt_core.bench.speedup`, one process, holding
``<results>/gpu.lock`` (:func:`gpu_lock`; the device call waits for it before training), and writes
one record per setting under ``<results>/bench/<device>/<device name>/``. :func:`arrive` prepares the
training that ``elrt batch --executor local --device cuda`` then does like on any machine: it checks
the copied tree against the pack's commit (:mod:`.source`) for the runs' provenance and copies in the
records the tree already holds, so finished runs are not trained again.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import records
from ..bench import BenchSettings
from ..paths import RESULTS_FOLDER
from ..profiles import Profile
from . import pack as pack_lib
from . import source

__all__ = [
    "BENCH_MODELS",
    "BENCH_RATIOS",
    "bench_settings",
    "bench",
    "arrive",
    "seed_records",
    "gpu_lock",
    "LOCK_FILE",
    "SOURCE_ENV",
]

BENCH_MODELS: dict[str, int] = {"resnet20": 128, "resnet56": 128, "resnet50": 64}
"""Bench models and their batch sizes: the CIFAR ResNets at the training batch, ResNet-50 at ImageNet shapes."""
BENCH_RATIOS = (2.0, 3.0)
LOCK_FILE = "gpu.lock"
SOURCE_ENV = pack_lib.DEVICE_DATA.parent / "source.env"
"""Shell ``export`` lines naming the commit of the device's copy of the tree (relative to the tree)."""
_Log = Callable[[str], None]


@contextmanager
def gpu_lock(results: Path, wait_s: float, log: _Log = print) -> Iterator[float]:
    """Hold ``<results>/gpu.lock`` exclusively for the block (bench and training never overlap);
    waits up to ``wait_s`` seconds for a holder to finish and yields the seconds waited."""
    results.mkdir(parents=True, exist_ok=True)
    fd = os.open(results / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    t0, said = time.time(), False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() - t0 > wait_s:
                    raise TimeoutError(f"{results / LOCK_FILE} is still held (a bench?) after {wait_s:.0f} s") from None
                if not said:
                    log(f"waiting for the process holding {results / LOCK_FILE} (a bench still running?)")
                    said = True
                time.sleep(1.0)
        yield time.time() - t0
    finally:
        os.close(fd)


def bench_settings(
    models: Sequence[str] = tuple(BENCH_MODELS),
    ratios: Sequence[float] = BENCH_RATIOS,
    variants: Sequence[str] = ("channels_last",),
    device: str = "cuda",
    steps: int = 10,
    warmup: int = 3,
    batch_size: int | None = None,
) -> list[BenchSettings]:
    """One Tucker-2 speedup setting per (model, ratio, variant), with the model's batch size unless ``batch_size`` is given."""
    return [
        BenchSettings(
            model=m,
            format="tucker2",
            flops_ratio=float(r),
            device=device,
            batch_size=batch_size or BENCH_MODELS.get(m, 128),
            steps=steps,
            warmup=warmup,
            variant=v,
        )
        for m in models
        for r in ratios
        for v in variants
    ]


def bench(settings: Sequence[BenchSettings], results: Path, *, log: _Log = print, lock_wait_s: float = 0.0) -> dict[str, Any]:
    """Measure every setting (holding the bench lock) and write its record; a setting that fails is
    reported and skipped. Returns ``{"written": [paths], "failed": {name: error}, "seconds": s}``."""
    from .. import bench as bench_lib

    t0, written, failed = time.time(), [], {}
    with gpu_lock(results, lock_wait_s, log):
        for s in settings:
            name = bench_lib.record_name(s)
            try:
                result = bench_lib.speedup(s)
            except Exception as e:  # one setting's failure (memory, a missing kernel) must not cost the others
                failed[name] = f"{type(e).__name__}: {e}"
                log(f"[bench failed] {name}: {failed[name]}")
                continue
            out = results / "bench" / s.device / records.device_slug(result["provenance"]["device_name"]) / name
            records.write_json(out, result)
            written.append(str(out))
            log(bench_lib.summary(result))
    return {"written": written, "failed": failed, "seconds": round(time.time() - t0, 1)}


def seed_records(profile: Profile, tree_results: Path, results: Path) -> int:
    """Copy ``record.json`` of every run folder of ``tree_results/<profile>`` missing in ``results/<profile>``; the count copied."""
    if Path(tree_results).resolve() == Path(results).resolve() or not (Path(tree_results) / profile.name).is_dir():
        return 0
    copied = 0
    for rec in sorted((Path(tree_results) / profile.name).glob(f"*/{records.RECORD_FILE}")):
        target = Path(results) / profile.name / rec.parent.name / records.RECORD_FILE
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(rec, target)
            copied += 1
    return copied


def arrive(root: Path, source_state: dict[str, Any], profile: Profile, results: Path, log: _Log = print) -> dict[str, Any]:
    """On the lent machine, after the pack is unpacked: check the tree against the pack's source state
    (:func:`.source.verify`) and write the variables that hand the answer to the runs' records as shell
    ``export`` lines into :data:`SOURCE_ENV` (the device call sources them before ``elrt batch``); copy
    the tree's records of ``profile`` into ``results``, so that finished runs are not trained again."""
    verified = source.verify(root, source_state)
    state = "DIFFERS from it: " + ", ".join(verified["changed"]) if verified["dirty"] else "unchanged"
    log(f"source: commit {verified['commit'][:12]}, {state}")
    env = root / SOURCE_ENV
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text("".join(f"export {k}={v}\n" for k, v in source.environment(verified).items()))
    copied = seed_records(profile, root / RESULTS_FOLDER, results)
    log(f"records: {copied} of profile {profile.name} copied from the tree (their runs are not trained again)")
    return {"source": verified, "records_copied": copied}
