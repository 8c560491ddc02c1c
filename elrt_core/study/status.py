"""Where each run of a profile stands (``elrt status``), read from files only.

A run's state comes from its run folder (``record.json``: done or diverged; the folder's lock held:
running; ``checkpoint.pt``: the epochs done) and, for a run that ``elrt batch`` handed to an executor,
from two small files in ``<results>/<profile>/.jobs/``: ``<run>.submit.json``, written by the
submitter (executor, job id, when), and ``<run>.job.json``, written by the job itself as it goes
(``running``, ``requeued``, ``stopped``, ``failed``, ``busy``, ``finished``, ``diverged``; host,
process, GPUs, how many times it started). Slurm without its accounting database cannot say how a
job ended, so the answer is read where the jobs leave it, the same on a laptop, a login node or in CI;
only whether Slurm still holds a job is asked (``squeue``, where it answers). The states:

* ``done`` / ``diverged``: a record exists;
* ``running``: the run folder is locked, or its job says so from another host (epochs done shown);
* ``queued``: submitted, or requeued after a preemption, and not started yet;
* ``failed``: its last job ended with an error (the last lines of its ``train.log`` say why), or its
  Slurm job is gone without a record (``squeue``, where it answers, no longer holds it; the last lines
  of the job's Slurm log);
* ``partial``: a checkpoint and nothing running (the next ``elrt batch`` resumes it);
* ``missing``: nothing yet.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import records
from ..profiles import Profile
from ..train import checkpoint, run_folder
from . import plan as plan_lib

__all__ = [
    "RunStatus",
    "STATES",
    "JOBS_FOLDER",
    "LOG_FILE",
    "jobs_folder",
    "submitit_folder",
    "slurm_active",
    "write_submitted",
    "write_job",
    "read_job",
    "run_status",
    "profile_status",
    "log_tail",
]

STATES = ("done", "diverged", "running", "queued", "failed", "partial", "missing")
JOBS_FOLDER = ".jobs"
LOG_FILE = "train.log"
_TAIL_LINES = 3


def jobs_folder(out: Path) -> Path:
    """The job files' folder of the profile that run folder ``out`` belongs to: ``<out>/../.jobs``."""
    return Path(out).parent / JOBS_FOLDER


def submitit_folder(base: Path) -> Path:
    """submitit's folder (pickled jobs, their logs, sbatch scripts) of the profile folder ``base``."""
    return Path(base) / JOBS_FOLDER / "submitit"


def slurm_active(job_ids: Sequence[str]) -> set[str] | None:
    """Which of ``job_ids`` (``<array id>_<index>`` or plain ids) Slurm still holds (pending, running,
    requeued), from ``squeue``; ``None`` where ``squeue`` cannot answer (no Slurm here)."""
    arrays = sorted({j.split("_")[0] for j in job_ids})
    if not arrays:
        return set()
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays)], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    return {line.strip() for line in out.stdout.splitlines() if line.strip()} & set(job_ids)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_submitted(out: Path, executor: str, job_id: str) -> None:
    """Note that the run of folder ``out`` was handed to ``executor`` as job ``job_id``."""
    path = jobs_folder(out) / f"{Path(out).name}.submit.json"
    records.write_json(path, {"executor": executor, "job_id": job_id, "submitted": _now()})


def read_job(out: Path) -> dict[str, Any] | None:
    """What the last job of run folder ``out`` wrote about itself, or ``None``."""
    return _read(jobs_folder(out) / f"{Path(out).name}.job.json")


def write_job(out: Path, state: str, job: dict[str, Any], **more: Any) -> None:
    """The job ``job`` (``executor``, ``job_id``, ...) of run folder ``out`` is now in ``state``."""
    records.write_json(jobs_folder(out) / f"{Path(out).name}.job.json", {**job, "state": state, "updated": _now(), **more})


def log_tail(path: Path, lines: int = _TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of the log file ``path`` (none if there is no such file)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


@dataclass
class RunStatus:
    """One planned run's state (one of :data:`STATES`), the epochs its checkpoint holds, what its
    job said about itself (``job``), a one-line ``detail`` and, for a failed run, its log's last lines."""

    name: str
    priority: int
    method: str
    state: str
    epochs: int
    epoch: int | None = None
    detail: str = ""
    job: dict[str, Any] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _epoch(out: Path) -> int | None:
    """Epochs done by the run's checkpoint, or ``None`` (none, or being replaced right now)."""
    path = out / checkpoint.CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        return int(checkpoint.load(path)["epoch"])
    except Exception:  # a checkpoint being written or foreign: no epoch to show, not a failure of status
        return None


def _from_jobs(out: Path) -> tuple[str | None, dict[str, Any]]:
    """The state the job files give (``None`` where they say nothing), and the last job's file."""
    submitted = _read(jobs_folder(out) / f"{out.name}.submit.json") or {}
    job = read_job(out) or {}
    if submitted and job.get("job_id") != submitted.get("job_id"):
        return "queued", {**submitted, "state": "queued"}
    state = job.get("state")
    if state == "requeued":
        return "queued", job
    if state == "running" and job.get("host") != platform.node():  # another node: its lock may not be visible here
        return "running", job
    if state == "failed":
        return "failed", job
    return None, job


def _ended_in_slurm(status: RunStatus, base: Path, active: set[str] | None) -> None:
    """A run its job files call queued or running whose Slurm job is gone (``active``: what ``squeue``
    still holds; ``None``: no Slurm to ask) ended without a word: failed, with the job's Slurm log."""
    job_id = status.job.get("job_id")
    if status.state not in ("queued", "running") or status.job.get("executor") != "slurm" or active is None or job_id in active:
        return
    status.state = "failed"
    status.job = {**status.job, "error": f"Slurm job {job_id} ended without a record"}
    status.log = log_tail(submitit_folder(base) / f"{job_id}_0_log.out")


def run_status(run: plan_lib.PlannedRun, base: Path, active: set[str] | None = None) -> RunStatus:
    """The state of ``run`` whose run folder is ``base/<run name>`` (see the module docstring);
    ``active``: the Slurm jobs ``squeue`` holds, read before this call (``None``: none to ask)."""
    out = Path(base) / run.config.name
    status = RunStatus(run.config.name, run.priority, run.method, "missing", run.config.epochs)
    rec = records.lookup(run.config, base)
    if rec is not None:
        status.state = "done" if rec.finished else "diverged"
        status.detail = (
            f"test {rec.metrics['final_test_top1']:.2f}%" if rec.finished else rec.metrics.get("divergence", {}).get("reason", "")
        )
        return status
    status.epoch = _epoch(out)
    from_jobs, status.job = _from_jobs(out)
    if run_folder.busy(out):
        status.state = "running"
    elif from_jobs is not None:
        status.state = from_jobs
        _ended_in_slurm(status, base, active)
    elif (out / checkpoint.CHECKPOINT_FILE).is_file():
        status.state = "partial"
    if status.state == "failed":
        status.log = status.log or log_tail(out / LOG_FILE)
        status.detail = status.job.get("error", "")
    where = " ".join(f"{k} {status.job[k]}" for k in ("executor", "job_id", "host") if status.job.get(k))
    status.detail = "; ".join(x for x in (status.detail, where) if x)
    return status


def profile_status(profile: Profile, runs: Iterable[plan_lib.PlannedRun], root: Path | str | None = None) -> list[RunStatus]:
    """:func:`run_status` of each of ``runs`` of ``profile`` under ``<root>/<profile>``; Slurm, where it
    answers, is asked once which of their jobs it still holds (before any record is read)."""
    base, runs = records.results_root(root) / profile.name, list(runs)
    said = [_from_jobs(base / r.config.name)[1] for r in runs]
    ids = [j["job_id"] for j in said if j.get("executor") == "slurm" and j.get("job_id")]
    active = slurm_active(ids) if ids else set()
    return [run_status(run, base, active) for run in runs]
