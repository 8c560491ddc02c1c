"""``elrt batch``: train the missing runs of a profile, several processes side by side, in plan order.

One scheduler process keeps up to ``jobs`` training processes busy. Each is an ``elrt train`` of one
planned run in its run folder (``<results>/<profile>/<run name>``), resuming that folder's
checkpoint, with its output in ``train.log`` there. Runs with a record (finished or diverged) are
skipped; a run whose folder another process has locked is left to that process. With ``minutes``,
no run starts after the deadline and the runs still training at the deadline are stopped (each keeps
its last epoch's checkpoint and resumes in the next batch). Nothing of a run is lost on a crash of
the scheduler: every run is its own process writing its own checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .. import records
from ..profiles import Profile
from ..train import run_folder
from . import plan as plan_lib
from .runs import run_dir

__all__ = ["run", "pending", "BatchReport", "LOG_FILE", "CONFIG_FILE"]

LOG_FILE = "train.log"
CONFIG_FILE = "config.yaml"
_POLL_SECONDS = 2.0


@dataclass
class BatchReport:
    """What a batch did: run names per outcome, and the wall seconds it took."""

    finished: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def pending(profile: Profile, root: Path | str | None = None, max_priority: int | None = None) -> list[plan_lib.PlannedRun]:
    """The planned runs of ``profile`` (up to ``max_priority``) that have no record yet, in plan order."""
    base = records.results_root(root) / profile.name
    return [r for r in plan_lib.plan(profile, max_priority) if records.lookup(r.config, base) is None]


def _command(
    run: plan_lib.PlannedRun, profile: Profile, out: Path, device: str, threads: int | None, data_dir: str | None
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "elrt_core.cli",
        "train",
        "--profile",
        profile.name,
        "--config",
        str(out / CONFIG_FILE),
        "--out",
        str(out),
        "--resume",
        "--device",
        device,
    ]
    if threads:
        cmd += ["--threads", str(threads)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    return cmd


@dataclass
class _Pool:
    """The training processes of one batch: starting, finishing and stopping them, with the report."""

    profile: Profile
    command: Callable[[plan_lib.PlannedRun, Path], list[str]]
    env: dict[str, str]
    root: Path | str | None
    log: Callable[[str], None]
    report: BatchReport = field(default_factory=BatchReport)
    active: dict[subprocess.Popen, tuple[plan_lib.PlannedRun, Path, float]] = field(default_factory=dict)

    def start(self, run_: plan_lib.PlannedRun, position: str) -> None:
        out = run_dir(run_.config, self.profile.name, self.root)
        if records.lookup(run_.config, out.parent) is not None:  # finished meanwhile elsewhere
            self.report.skipped.append(run_.config.name)
            return
        if run_folder.busy(out):  # another batch or `elrt train` is training it: left to that process
            self.report.skipped.append(run_.config.name)
            self.log(f"[busy]     {run_.config.name}: another process is training it; left to that process")
            return
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(yaml.safe_dump(run_.config.to_dict(), sort_keys=True))
        with open(out / LOG_FILE, "a") as logfile:
            proc = subprocess.Popen(
                self.command(run_, out), stdout=logfile, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        self.active[proc] = (run_, out, time.time())
        self.log(f"[start]    {run_.config.name} (priority {run_.priority}, {run_.label}; {position})")

    def reap(self) -> None:
        """Record the outcome of every process that has ended."""
        for proc in [p for p in self.active if p.poll() is not None]:
            run_, out, t0 = self.active.pop(proc)
            rec = records.lookup(run_.config, out.parent)
            if rec is not None and rec.finished:
                self.report.finished.append(run_.config.name)
                val = rec.metrics.get("final_val_top1")
                self.log(
                    f"[done]     {run_.config.name}: test {rec.metrics['final_test_top1']:.2f}%"
                    + (f", val {val:.2f}%" if val is not None else "")
                    + f" ({(time.time() - t0) / 60:.1f} min)"
                )
            elif proc.returncode == run_folder.BUSY_EXIT_STATUS:  # another process took the folder first
                self.report.skipped.append(run_.config.name)
                self.log(f"[busy]     {run_.config.name}: another process is training it; left to that process")
            elif rec is not None:
                self.report.diverged.append(run_.config.name)
                self.log(f"[diverged] {run_.config.name}: {rec.metrics.get('divergence', {}).get('reason', '')}")
            else:
                self.report.failed.append(run_.config.name)
                self.log(f"[failed]   {run_.config.name}: exit {proc.returncode}; see {out / LOG_FILE}")

    def stop_all(self, why: str) -> None:
        """SIGTERM every running process (SIGKILL after 60 s); each keeps its last checkpoint."""
        for proc in list(self.active):
            proc.send_signal(signal.SIGTERM)
        for proc in list(self.active):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            run_, _, _ = self.active.pop(proc)
            self.report.stopped.append(run_.config.name)
            self.log(f"[stopped]  {run_.config.name} ({why}); its checkpoint resumes in the next batch")


def run(
    profile: Profile,
    *,
    jobs: int = 1,
    threads: int | None = None,
    minutes: float | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    root: Path | str | None = None,
    max_priority: int | None = None,
    runs: list[plan_lib.PlannedRun] | None = None,
    log: Callable[[str], None] = print,
    extra: Sequence[str] = (),
) -> BatchReport:
    """Train the :func:`pending` runs of ``profile`` (only those among ``runs`` if given) with up
    to ``jobs`` processes of ``threads`` threads each (``None``: PyTorch's default); stop at
    ``minutes`` if given. ``extra``: more ``elrt train`` options for every run (run options such
    as ``--compile``, not config fields). See the module docstring."""
    started = time.time()
    deadline = None if minutes is None else started + 60 * minutes
    queue = pending(profile, root, max_priority)
    if runs is not None:
        keep = {r.config.hash for r in runs}
        queue = [r for r in queue if r.config.hash in keep]
    total = len(queue)
    pool = _Pool(
        profile,
        lambda r, out: [*_command(r, profile, out, device, threads, data_dir), *extra],
        {**os.environ, "ELRT_RESULTS": str(records.results_root(root))},
        root,
        log,
    )
    log(
        f"batch {profile.name}: {total} run(s) to train, {jobs} process(es) x {threads or 'default'} thread(s)"
        + (f", stop after {minutes:g} min" if minutes is not None else "")
    )
    try:
        while queue or pool.active:
            pool.reap()
            if deadline is not None and time.time() >= deadline:
                pool.stop_all("deadline")
                break
            while queue and len(pool.active) < jobs:
                pool.start(queue.pop(0), f"{total - len(queue)}/{total}")
            time.sleep(_POLL_SECONDS)
    except KeyboardInterrupt:
        pool.stop_all("interrupted")
        raise
    finally:
        pool.report.seconds = time.time() - started
    r = pool.report
    log(
        f"batch {profile.name}: {len(r.finished)} finished, {len(r.diverged)} diverged, {len(r.failed)} failed, "
        f"{len(r.stopped)} stopped, {len(r.skipped)} left to other processes, {len(queue)} not started, "
        f"in {r.seconds / 60:.1f} min"
    )
    return r
