"""The work of a lent GPU machine: the CUDA bench set, then as many planned runs as fit a deadline.

:func:`bench` measures dense against Tucker-2 at 2x and 3x fewer MACs for ResNet-20, -56 (CIFAR
shapes) and ResNet-50 (ImageNet shapes) with :func:`elrt_core.bench.speedup`, one process, and
writes one record per setting under ``<results>/bench/<device>/<device name>/``. :func:`train`
hands the profile's plan to the scheduler :func:`elrt_core.study.batch.run` (one ``elrt train``
process per run, several side by side, in priority order, each resuming its checkpoint and
stopped at the deadline) after three cheap preparations: the records the tree already holds are
copied in, so finished runs are not trained again; the source check of the pack
(:mod:`.source`) is handed to the runs' provenance; and the bench lock is taken, so training
does not overlap a bench still running in the background (it waits at most the bench's time limit). Its report is written as
``<results>/gpu/batch-<profile>-<UTC time>.json``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import records
from ..bench import BenchSettings
from ..profiles import Profile
from ..study import batch as study_batch
from . import pack as pack_lib
from . import source

__all__ = [
    "BENCH_MODELS",
    "BENCH_RATIOS",
    "bench_settings",
    "bench",
    "train",
    "progress",
    "seed_records",
    "gpu_lock",
    "LOCK_FILE",
]

BENCH_MODELS: dict[str, int] = {"resnet20": 128, "resnet56": 128, "resnet50": 64}
"""Bench models and their batch sizes: the CIFAR ResNets at the training batch, ResNet-50 at ImageNet shapes."""
BENCH_RATIOS = (2.0, 3.0)
LOCK_FILE = "gpu.lock"
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


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for the block (inherited by the training processes)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _source_check(root: Path, pack_dir: Path, log: _Log) -> dict[str, Any] | None:
    """:func:`.source.verify` of the tree against the pack's source state, or ``None`` without a pack."""
    try:
        manifest = pack_lib.read_manifest(pack_dir)
    except pack_lib.PackError:
        log(f"no pack manifest in {pack_dir}: run records name the commit only if git works here")
        return None
    verified = source.verify(root, manifest["source"])
    log(
        f"source: commit {verified['commit'][:12]}, {'DIFFERS from it: ' + ', '.join(verified['changed']) if verified['dirty'] else 'unchanged'}"
    )
    return verified


def _bench_subprocess(results: Path, timeout_s: float, device: str, log: _Log) -> dict[str, Any]:
    """Run ``elrt gpu bench`` in its own process (so a hang costs at most ``timeout_s``); its exit status and seconds."""
    cmd = [sys.executable, "-m", "elrt_core.cli", "gpu", "bench", "--device", device, "--results", str(results)]
    t0 = time.time()
    try:
        code = subprocess.run(cmd, timeout=timeout_s).returncode
    except subprocess.TimeoutExpired:
        code = None
        log(f"[bench] stopped after {timeout_s:.0f} s; training goes on")
    return {"exit": code, "seconds": round(time.time() - t0, 1)}


def train(
    profile: Profile,
    *,
    root: Path,
    minutes: float,
    jobs: int,
    threads: int | None,
    device: str,
    data_dir: Path,
    results: Path,
    max_priority: int | None = None,
    compile: bool = False,
    bench_first: bool = True,
    bench_timeout_s: float = 180.0,
    pack_dir: Path | None = None,
    log: _Log = print,
) -> dict[str, Any]:
    """Bench (unless ``bench_first`` is false), then train the plan of ``profile`` until ``minutes``
    after the start of this call (bench and waits included); returns and writes the report."""
    started = time.time()
    deadline = started + 60 * minutes
    report: dict[str, Any] = {
        "profile": profile.name,
        "minutes": minutes,
        "jobs": jobs,
        "threads": threads,
        "device": device,
        "compile": compile,
        "started": _iso(started),
    }
    verified = _source_check(root, Path(pack_dir) if pack_dir else root / pack_lib.PACK_DIR, log)
    report["source"] = verified
    report["records_copied"] = seed_records(profile, root / "results", results)
    env = source.environment(verified) if verified else {}
    outcome = study_batch.BatchReport()
    try:
        with _environment(env):
            if bench_first:
                report["bench"] = _bench_subprocess(results, min(bench_timeout_s, max(deadline - time.time(), 1.0)), device, log)
            with contextlib.ExitStack() as held:
                try:  # a bench running in the background: wait for it, at most bench_timeout_s
                    report["bench_wait_seconds"] = round(
                        held.enter_context(gpu_lock(results, min(bench_timeout_s, max(deadline - time.time(), 0.0)), log)), 1
                    )
                except TimeoutError as e:
                    report["bench_wait_seconds"] = None
                    log(f"{e}; training starts beside it")
                left = (deadline - time.time()) / 60
                if left <= 0:
                    log("no time left for training")
                else:
                    outcome = study_batch.run(
                        profile,
                        jobs=jobs,
                        threads=threads,
                        minutes=left,
                        device=device,
                        data_dir=str(data_dir),
                        root=results,
                        max_priority=max_priority,
                        log=log,
                        extra=("--compile",) if compile else (),
                    )
    except KeyboardInterrupt:  # `timeout -s INT` past the deadline: the scheduler has stopped its runs; keep the report
        report["interrupted"] = True
        log("interrupted: the runs were stopped and keep their checkpoints")
    report.update(
        {
            "outcome": asdict(outcome),
            "progress": progress(profile, results),
            "ended": _iso(time.time()),
            "seconds": round(time.time() - started, 1),
        }
    )
    out = results / "gpu" / f"batch-{profile.name}-{_dt.datetime.now(_dt.UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    records.write_json(out, report)
    log(f"report: {out}")
    return report


def progress(profile: Profile, results: Path) -> dict[str, dict[str, Any]]:
    """Each unfinished planned run with a checkpoint: ``{"epoch": epochs done, "epochs": planned,
    "epoch_seconds": wall seconds of its last epoch}``, to size the next session."""
    from ..study.plan import plan
    from ..train import checkpoint

    out = {}
    for run in plan(profile):
        folder = Path(results) / profile.name / run.config.name
        if (folder / records.RECORD_FILE).exists() or not (folder / checkpoint.CHECKPOINT_FILE).is_file():
            continue
        path = folder / checkpoint.CHECKPOINT_FILE
        try:
            saved = checkpoint.check(checkpoint.load(path), str(path))
        except (checkpoint.CheckpointError, OSError) as e:  # being replaced right now, or foreign: report, do not fail the batch
            out[run.config.name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        last = saved["history"][-1] if saved.get("history") else {}
        out[run.config.name] = {"epoch": saved["epoch"], "epochs": run.config.epochs, "epoch_seconds": last.get("epoch_seconds")}
    return out


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")
