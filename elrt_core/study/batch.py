"""``elrt batch``: train the missing runs of a profile in plan order, through an executor.

Each planned run without a record becomes a job (:class:`.executors.RunJob`) that trains it in its
run folder (``<results>/<profile>/<run name>``), resuming that folder's checkpoint, with its output in
``train.log`` there. Runs with a record (finished or diverged) are skipped; a run whose folder another
process has locked is left to that process, so two batches (or a batch and an ``elrt train``) never
train a run twice. A compression run starts only after the dense run it decomposes has ended, when
that run is trained by the same batch (one trained elsewhere, or one that failed, leaves the compression
run to fail at once, saying which dense run to train first). The executors (:mod:`.executors`):

* ``local`` (the default): this process keeps up to ``jobs`` jobs alive, each in a fresh interpreter
  with ``threads`` threads and its own GPU (round robin over the visible ones), and reports each as it
  ends. With ``minutes``, no run starts after the deadline and the runs still training then are
  stopped, each keeping its last epoch's checkpoint. Ctrl-C, SIGTERM and SIGHUP stop them the same
  way (exit status 130). A crash of this process loses nothing: every run writes its own checkpoint.
* ``debug``: the same runs one after the other in this process (pdb on an error).
* ``slurm``: one job array per resource class, submitted at once (``dry_run``: the scripts are printed
  instead); runs already queued or running under Slurm are not submitted again; ``wait`` follows the
  jobs until every one has ended. A preempted or timed-out job is requeued and resumes its checkpoint.
  A compression run whose dense run is submitted too (or still held by Slurm) is submitted after it, on
  its own, with ``--dependency=afterok:<that job>``; Slurm cancels it if that job fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import records
from ..profiles import Profile
from ..train import run_folder
from . import executors
from . import plan as plan_lib
from . import status as status_lib
from .runs import run_dir

__all__ = ["run", "pending", "BatchReport", "LOG_FILE", "CONFIG_FILE"]

LOG_FILE = status_lib.LOG_FILE
CONFIG_FILE = "config.yaml"
_POLL_SECONDS = 2.0
_SLURM_POLL_SECONDS = 5.0
_STOP_WAIT_SECONDS = 60.0
_Log = Callable[[str], None]


@dataclass
class BatchReport:
    """What a batch did: run names per outcome (``submitted``: ``name (job id)`` handed to Slurm), and
    the wall seconds it took."""

    finished: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def pending(profile: Profile, root: Path | str | None = None, max_priority: int | None = None) -> list[plan_lib.PlannedRun]:
    """The planned runs of ``profile`` (up to ``max_priority``) that have no record yet, in plan order."""
    base = records.results_root(root) / profile.name
    return [r for r in plan_lib.plan(profile, max_priority) if records.lookup(r.config, base) is None]


def _ready(queue: list[plan_lib.PlannedRun], running: AbstractSet[str] = frozenset()) -> plan_lib.PlannedRun | None:
    """Take from ``queue`` the first run that waits for no other: a compression run waits while the dense
    run it decomposes (:attr:`TrainConfig.decomposes`) is still in ``queue`` or among the config hashes
    ``running``; ``None`` when every run left waits."""
    waited = {r.config.hash for r in queue} | set(running)
    for i, run_ in enumerate(queue):
        if run_.config.decomposes not in waited:
            return queue.pop(i)
    return None


@dataclass(frozen=True)
class _Settings:
    """How every job of one batch trains: the options of :class:`.executors.RunJob` besides the run."""

    profile: Profile
    root: Path | str | None
    device: str
    threads: int | None
    data_dir: str | None
    compile: bool

    def job(self, run_: plan_lib.PlannedRun, capture_output: bool = True, gpu: str | None = None) -> executors.RunJob:
        out = run_dir(run_.config, self.profile.name, self.root).resolve()  # jobs may start elsewhere
        data_dir = str(Path(self.data_dir).resolve()) if self.data_dir else None
        return executors.RunJob(
            run_.config.to_dict(),
            str(out),
            self.profile.name,
            self.device,
            self.threads,
            data_dir,
            self.compile,
            capture_output,
            gpu,
        )


def _claimable(run_: plan_lib.PlannedRun, out: Path, report: BatchReport, log: _Log) -> bool:
    """Whether ``run_`` is still to train here: no record meanwhile, no other process in its folder.
    Its folder gets ``config.yaml`` (``elrt train --config`` of it trains the same run by hand)."""
    if records.lookup(run_.config, out.parent) is not None:  # finished meanwhile elsewhere
        report.skipped.append(run_.config.name)
        return False
    if run_folder.busy(out):  # another batch or `elrt train` is training it: left to that process
        report.skipped.append(run_.config.name)
        log(f"[busy]     {run_.config.name}: another process is training it; left to that process")
        return False
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(run_.config.to_dict(), sort_keys=True))
    return True


def _outcome(run_: plan_lib.PlannedRun, out: Path, job_id: str, report: BatchReport, log: _Log, minutes: float) -> None:
    """Report how the job ``job_id`` of ``run_`` ended, from its record and its job file."""
    name, rec = run_.config.name, records.lookup(run_.config, out.parent)
    said = status_lib.read_job(out) or {}
    said = said if said.get("job_id") == job_id else {}
    if rec is not None and rec.finished:
        report.finished.append(name)
        val = rec.metrics.get("final_val_top1")
        log(
            f"[done]     {name}: test {rec.metrics['final_test_top1']:.2f}%"
            + (f", val {val:.2f}%" if val is not None else "")
            + f" ({minutes:.1f} min)"
        )
    elif said.get("state") == "busy":  # another process took the folder first
        report.skipped.append(name)
        log(f"[busy]     {name}: another process is training it; left to that process")
    elif rec is not None:
        report.diverged.append(name)
        log(f"[diverged] {name}: {rec.metrics.get('divergence', {}).get('reason', '')}")
    else:
        report.failed.append(name)
        why = said.get("error") or "ended without a record (killed?)"
        log(f"[failed]   {name}: {why}; see {out / LOG_FILE}")
        for line in status_lib.log_tail(out / LOG_FILE):
            log(f"           | {line}")


def _visible_gpus(device: str) -> list[str] | None:
    """The GPUs local jobs are handed, one each, as ``CUDA_VISIBLE_DEVICES`` names them (``None``: no GPU)."""
    import torch

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [x.strip() for x in visible.split(",") if x.strip()] or None
    return [str(i) for i in range(torch.cuda.device_count())] or None


@dataclass
class _LocalPool:
    """The local jobs of one batch: starting, finishing and stopping them, with the report."""

    settings: _Settings
    gpus: list[str] | None
    log: _Log
    report: BatchReport = field(default_factory=BatchReport)
    active: dict[Any, tuple[plan_lib.PlannedRun, Path, float, str | None]] = field(default_factory=dict)

    def start(self, run_: plan_lib.PlannedRun, position: str) -> None:
        gpu = self._free_gpu()
        job = self.settings.job(run_, gpu=gpu)
        out = Path(job.out)
        if not _claimable(run_, out, self.report, self.log):
            return
        handle = executors.submit_local(job, status_lib.submitit_folder(out.parent))
        self.active[handle] = (run_, out, time.time(), gpu)
        where = "" if gpu is None else f", GPU {gpu}"
        self.log(f"[start]    {run_.config.name} (priority {run_.priority}, {run_.label}; {position}{where})")

    @property
    def running(self) -> set[str]:
        """The config hashes of the runs training now."""
        return {run_.config.hash for run_, *_ in self.active.values()}

    def _free_gpu(self) -> str | None:
        if not self.gpus:
            return None
        used = [gpu for *_, gpu in self.active.values()]
        return min(self.gpus, key=lambda g: (used.count(g), self.gpus.index(g)))

    def reap(self) -> None:
        """Report every job that has ended."""
        for handle in [h for h in self.active if h.done()]:
            run_, out, t0, _ = self.active.pop(handle)
            _outcome(run_, out, handle.job_id, self.report, self.log, (time.time() - t0) / 60)

    def stop_all(self, why: str) -> None:
        """Stop every running job (SIGINT; its checkpoint is its last finished epoch) and wait for them."""
        for handle in list(self.active):
            handle.cancel()
        deadline = time.time() + _STOP_WAIT_SECONDS
        while any(not h.done() for h in self.active) and time.time() < deadline:
            time.sleep(0.2)
        for run_, *_ in self.active.values():
            self.report.stopped.append(run_.config.name)
            self.log(f"[stopped]  {run_.config.name} ({why}); its checkpoint resumes in the next batch")
        self.active.clear()


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the batch: it stops its runs as for Ctrl-C."""


@contextlib.contextmanager
def _stop_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`_Terminated` (a KeyboardInterrupt) in the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(signal.Signals(signum).name)

    before = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _run_local(queue: list[plan_lib.PlannedRun], pool: _LocalPool, jobs: int, deadline: float | None) -> None:
    """Keep up to ``jobs`` of ``queue`` running until all have ended or ``deadline`` passes."""
    total = len(queue)
    with _stop_on_termination():
        try:
            while queue or pool.active:
                pool.reap()
                if deadline is not None and time.time() >= deadline:
                    pool.stop_all("deadline")
                    break
                while len(pool.active) < jobs and (run_ := _ready(queue, pool.running)) is not None:
                    pool.start(run_, f"{total - len(queue)}/{total}")
                time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt as e:
            pool.stop_all(f"terminated by {e}" if isinstance(e, _Terminated) else "interrupted")
            raise


def _run_debug(queue: list[plan_lib.PlannedRun], settings: _Settings, report: BatchReport, log: _Log) -> None:
    """Train ``queue`` one run after the other in this process."""
    while queue:
        run_ = _ready(queue)
        assert run_ is not None, "with nothing running, a dense run waits for none"
        job = settings.job(run_, capture_output=False)
        out = Path(job.out)
        if not _claimable(run_, out, report, log):
            continue
        t0 = time.time()
        log(f"[start]    {run_.config.name} (priority {run_.priority}, {run_.label}; in this process)")
        executors.run_debug(job, status_lib.submitit_folder(out.parent))
        _outcome(run_, out, (status_lib.read_job(out) or {}).get("job_id", ""), report, log, (time.time() - t0) / 60)


def _queued_in_slurm(queue: list[plan_lib.PlannedRun], settings: _Settings) -> dict[str, str]:
    """``{run name: job id}`` of the runs of ``queue`` that an earlier submission left queued or running
    in Slurm (:func:`.status.profile_status`: their job files, confirmed by ``squeue``)."""
    found = status_lib.profile_status(settings.profile, queue, settings.root)
    return {s.name: s.job["job_id"] for s in found if s.state in ("queued", "running") and s.job.get("executor") == "slurm"}


def _submit_slurm(
    queue: list[plan_lib.PlannedRun], settings: _Settings, options: executors.SlurmOptions, dry_run: bool, log: _Log
) -> tuple[BatchReport, list[tuple[plan_lib.PlannedRun, str]]]:
    """Submit ``queue`` (less what Slurm already holds) as job arrays, or print their scripts (``dry_run``)."""
    report = BatchReport()
    held = _queued_in_slurm(queue, settings)
    for name, job_id in held.items():
        report.skipped.append(name)
        log(f"[queued]   {name}: already in Slurm as job {job_id}; not submitted again")
    todo = [r for r in queue if r.config.name not in held]
    held_ids = {r.config.hash: held[r.config.name] for r in queue if r.config.name in held}
    if dry_run:
        first, later = _waves(todo, set(held_ids))
        _print_scripts(first, settings, options, (), log)
        names = {r.config.hash: r.config.name for r in todo}
        for dense, group in _by_dense(later).items():
            _print_scripts(group, settings, options, (held_ids.get(dense) or f"<job id of {names[dense]}>",), log)
        return report, []
    todo = [r for r in todo if _claimable(r, run_dir(r.config, settings.profile.name, settings.root), report, log)]
    first, later = _waves(todo, set(held_ids))
    pairs = _submit_wave(first, settings, options, (), report, log)
    ids = held_ids | {run_.config.hash: job_id for run_, job_id in pairs}
    for dense, group in _by_dense(later).items():  # each waits for its own dense run's job only
        log(f"[held]     {', '.join(r.config.name for r in group)}: waits for Slurm job {ids[dense]} (its dense run)")
        pairs += _submit_wave(group, settings, options, (ids[dense],), report, log)
    return report, pairs


def _submit_wave(
    runs: list[plan_lib.PlannedRun],
    settings: _Settings,
    options: executors.SlurmOptions,
    after: tuple[str, ...],
    report: BatchReport,
    log: _Log,
) -> list[tuple[plan_lib.PlannedRun, str]]:
    """Submit ``runs`` as job arrays held until the jobs ``after`` have completed, and note each job in its
    run folder at once (a later wave that fails to submit leaves this one known to the next batch)."""
    by_name = {r.config.name: r for r in runs}
    folder = status_lib.submitit_folder(records.results_root(settings.root) / settings.profile.name)
    submitted = executors.submit_slurm([settings.job(r) for r in runs], settings.profile.name, options, folder, after)
    pairs = [(by_name[Path(job.out).name], job_id) for job, job_id in submitted]
    for run_, job_id in pairs:
        status_lib.write_submitted(run_dir(run_.config, settings.profile.name, settings.root), "slurm", job_id)
        report.submitted.append(f"{run_.config.name} ({job_id})")
        log(f"[queued]   {run_.config.name} (priority {run_.priority}, {run_.label}): Slurm job {job_id}")
    return pairs


def _waves(todo: list[plan_lib.PlannedRun], held: set[str]) -> tuple[list[plan_lib.PlannedRun], list[plan_lib.PlannedRun]]:
    """``todo`` split in the runs Slurm may start at once and, after them, the compression runs whose dense
    run is among ``todo`` or among the config hashes ``held`` in Slurm (each list in plan order)."""
    waited = {r.config.hash for r in todo} | held
    first = [r for r in todo if r.config.decomposes not in waited]
    return first, [r for r in todo if r.config.decomposes in waited]


def _by_dense(runs: list[plan_lib.PlannedRun]) -> dict[str, list[plan_lib.PlannedRun]]:
    """The compression ``runs`` by the config hash of the dense run each decomposes, in plan order."""
    out: dict[str, list[plan_lib.PlannedRun]] = {}
    for run_ in runs:
        out.setdefault(run_.config.decomposes, []).append(run_)
    return out


def _print_scripts(
    runs: list[plan_lib.PlannedRun], settings: _Settings, options: executors.SlurmOptions, after: tuple[str, ...], log: _Log
) -> None:
    """Log the ``sbatch`` script of each job array ``runs`` would be submitted as (``--dry-run``)."""
    jobs, profile = [settings.job(r) for r in runs], settings.profile.name
    folder = status_lib.submitit_folder(records.results_root(settings.root) / profile)
    sizes = {name: len(members) for name, members in executors.classes(jobs, profile).items()}
    held = f" after job {after[0]}" if after else ""
    for name, script in executors.slurm_scripts(jobs, profile, options, folder, after).items():
        log(f"# ---- {name}{held}: {sizes[name]} run(s); not submitted (--dry-run)\n{script}")


def _wait_slurm(pairs: list[tuple[plan_lib.PlannedRun, str]], settings: _Settings, report: BatchReport, log: _Log) -> None:
    """Follow the submitted jobs until each has ended (record, failure, or gone from Slurm), reporting each
    change; Ctrl-C stops following, not the jobs."""
    t0, seen, left = time.time(), {}, dict(pairs)
    try:
        while left:
            active = status_lib.slurm_active(list(left.values()))
            for run_, job_id in list(left.items()):
                out = run_dir(run_.config, settings.profile.name, settings.root)
                said = status_lib.read_job(out) or {}
                state = said.get("state") if said.get("job_id") == job_id else None
                if state != seen.get(run_.config.name) and state in ("running", "requeued"):
                    log(f"[{state}]{' ' * (9 - len(state))}{run_.config.name}: job {job_id} on {said.get('host')}")
                seen[run_.config.name] = state
                ended = records.lookup(run_.config, out.parent) is not None or state in ("failed", "busy", "stopped")
                if ended or (active is not None and job_id not in active):
                    _outcome(run_, out, job_id, report, log, (time.time() - t0) / 60)
                    del left[run_]
            time.sleep(_SLURM_POLL_SECONDS if left else 0)
    except KeyboardInterrupt:
        log(f"stopped following {len(left)} job(s); they go on in Slurm (elrt status --profile {settings.profile.name})")
        raise


def run(
    profile: Profile,
    *,
    executor: str = "local",
    jobs: int = 1,
    threads: int | None = None,
    minutes: float | None = None,
    device: str = "auto",
    data_dir: str | None = None,
    root: Path | str | None = None,
    max_priority: int | None = None,
    runs: list[plan_lib.PlannedRun] | None = None,
    compile: bool = False,
    slurm: executors.SlurmOptions | None = None,
    dry_run: bool = False,
    wait: bool = False,
    log: _Log = print,
) -> BatchReport:
    """Train the :func:`pending` runs of ``profile`` (only those among ``runs`` if given) through
    ``executor`` (see the module docstring): ``jobs`` local processes of ``threads`` threads each
    (``None``: PyTorch's default) until ``minutes``; or Slurm job arrays with ``slurm`` options
    (``dry_run``: print the scripts; ``wait``: follow the jobs to their end). ``compile``:
    ``torch.compile`` each model."""
    if executor not in executors.EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(executors.EXECUTORS)}")
    started = time.time()
    queue = pending(profile, root, max_priority)
    if runs is not None:
        keep = {r.config.hash for r in runs}
        queue = [r for r in queue if r.config.hash in keep]
    settings = _Settings(profile, root, device, threads, data_dir, compile)
    log(_opening(profile, executor, len(queue), jobs, threads, minutes))
    if executor == "slurm":
        report, pairs = _submit_slurm(queue, settings, slurm or executors.SlurmOptions(), dry_run, log)
        queue = queue if dry_run else []
        if wait:
            _wait_slurm(pairs, settings, report, log)
    elif executor == "debug":
        report = BatchReport()
        _run_debug(queue, settings, report, log)
    else:
        pool = _LocalPool(settings, _visible_gpus(device), log)
        report = pool.report
        _run_local(queue, pool, jobs, None if minutes is None else started + 60 * minutes)
    report.seconds = time.time() - started
    log(_closing(profile, report, len(queue)))
    return report


def _opening(profile: Profile, executor: str, total: int, jobs: int, threads: int | None, minutes: float | None) -> str:
    how = {
        "local": f"{jobs} process(es) x {threads or 'default'} thread(s)",
        "debug": "one after the other in this process",
        "slurm": "Slurm job arrays",
    }[executor]
    return f"batch {profile.name}: {total} run(s) to train, {how}" + (f", stop after {minutes:g} min" if minutes else "")


def _closing(profile: Profile, r: BatchReport, not_started: int) -> str:
    return (
        f"batch {profile.name}: {len(r.finished)} finished, {len(r.diverged)} diverged, {len(r.failed)} failed, "
        f"{len(r.stopped)} stopped, {len(r.skipped)} left to other processes, "
        + (f"{len(r.submitted)} submitted, " if r.submitted else "")
        + f"{not_started} not started, in {r.seconds / 60:.1f} min"
    )
