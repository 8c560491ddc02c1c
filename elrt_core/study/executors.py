"""The submitit adapter: the one module that imports submitit (1.5.4).

A planned run becomes a :class:`RunJob`, a picklable callable that trains one config in its run
folder, resuming the folder's checkpoint, in whatever process the executor starts:

* ``local``: :func:`submit_local` starts one job (a submitit controller and its task, a fresh
  interpreter) that sees only the GPU handed to it (:attr:`RunJob.gpu`), with no time limit of its own,
  in the job folder ``<results>/<profile>/.jobs/submitit`` (:func:`.status.submitit_folder`); the scheduler of :mod:`.batch` keeps at
  most ``--jobs`` of them alive and hands out the GPUs (submitit's LocalExecutor would start every
  submitted job at once, give each GPU 0, and stop a job after a default of two minutes; its
  controller restarts a requeued job at most 6 times, but a local job is requeued only by a USR2 sent to
  it, and the next batch resumes the run anyway);
* ``debug``: :func:`run_debug` runs the job in this process (a failure opens pdb);
* ``slurm``: :func:`submit_slurm` submits one job array per resource class (:func:`classes`),
  ``%``-limited, each task signalled ``signal_delay_s`` before its time limit, optionally held until
  other jobs have completed (``after``: the compression runs wait for their dense runs); :func:`slurm_scripts`
  writes the same ``sbatch`` scripts without submitting (``--dry-run``; no Slurm needed).

Preemption and time limits: submitit turns the signal (USR2) into a call of :meth:`RunJob.checkpoint`,
which returns the same job, so the requeued job resumes from the run folder's last epoch checkpoint
(at most one epoch is lost). Each job notes its state in the job files of :mod:`.status`; its
output goes to the run folder's ``train.log``; its record's provenance gains ``job``: executor, job id
and visible GPUs (the host and the number of resumptions are in the provenance already).
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import DelayedSubmission
from submitit.slurm.slurm import SlurmExecutor

from . import status as status_lib

__all__ = [
    "EXECUTORS",
    "RunJob",
    "SlurmOptions",
    "submit_local",
    "run_debug",
    "submit_slurm",
    "slurm_scripts",
    "classes",
    "MAX_REQUEUES",
]

EXECUTORS = ("local", "slurm", "debug")
MAX_REQUEUES = 20
"""Time-limit requeues a job may take before it ends as failed (preemptions do not count)."""
_LOCAL_TIMEOUT_MIN = 60 * 24 * 365
"""A local job has no time limit of its own (``elrt batch --minutes`` stops runs), yet submitit needs one."""


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 (Python's and PyTorch's output alike) appended to ``path`` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def _job_info() -> dict[str, Any]:
    """Executor, job id, host, process and visible GPUs of the job this process runs."""
    env = submitit.JobEnvironment()
    return {
        "executor": env.cluster,
        "job_id": env.job_id,
        "host": platform.node(),
        "pid": os.getpid(),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES") or None,
    }


def _own_session() -> None:
    """Make this local job a session of its own, as each run of a batch always was: Linux shares the CPU
    between sessions first (autogroup), so jobs left in the batch's session would split one share (on the
    2-core reference machine beside other work, a run took twice as long). The terminal's Ctrl-C then
    reaches the job through its controller, which stops it."""
    with contextlib.suppress(PermissionError):  # already a session or group leader
        os.setsid()


@dataclass(frozen=True)
class RunJob:
    """Train the config ``config`` (a :meth:`TrainConfig.to_dict`) in run folder ``out``, resuming its
    checkpoint; ``profile`` is for the record's provenance; ``gpu``: the one GPU the job may see (as
    ``CUDA_VISIBLE_DEVICES`` names it; ``None``: what the executor gives). Returns ``"finished"``,
    ``"diverged"`` or ``"busy"`` (another process trains in the folder: left to it); any other error fails the job."""

    config: dict[str, Any]
    out: str
    profile: str
    device: str = "auto"
    threads: int | None = None
    data_dir: str | None = None
    compile: bool = False
    capture_output: bool = True
    gpu: str | None = None

    def __call__(self) -> str:
        if self.gpu is not None:  # before CUDA starts in this process; an index or a GPU/MIG UUID alike
            os.environ["CUDA_VISIBLE_DEVICES"] = self.gpu
        info = _job_info()
        if info["executor"] == "local":
            _own_session()
        out = Path(self.out)
        before = status_lib.read_job(out) or {}
        starts = before.get("starts", 0) + 1 if before.get("job_id") == info["job_id"] else 1
        status_lib.write_job(out, "running", info, starts=starts)
        output = _output_to(out / status_lib.LOG_FILE) if self.capture_output else contextlib.nullcontext()
        try:
            with output:
                outcome = self._train(info)
        except KeyboardInterrupt:
            status_lib.write_job(out, "stopped", info, starts=starts)
            raise
        except Exception as e:
            status_lib.write_job(out, "failed", info, starts=starts, error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
            raise
        status_lib.write_job(out, outcome, info, starts=starts)
        return outcome

    def _train(self, info: dict[str, Any]) -> str:
        from ..config import RunOptions, TrainConfig
        from ..train import TrainingDiverged, fit
        from ..train.run_folder import FolderBusy

        options = RunOptions(
            out=Path(self.out),
            device=self.device,
            data_dir=Path(self.data_dir) if self.data_dir else None,
            resume=True,
            compile=self.compile,
            profile=self.profile,
            threads=self.threads,
        )
        job = {k: info[k] for k in ("executor", "job_id", "gpus")}
        try:
            fit(TrainConfig.from_dict(self.config), options, job=job)
        except FolderBusy as e:
            print(f"elrt: busy: {e}", file=sys.stderr)
            return "busy"
        except TrainingDiverged as e:
            print(f"elrt: diverged: {e}", file=sys.stderr)
            return "diverged"
        except Exception:
            traceback.print_exc()  # into train.log; the job's own log gets it from submitit too
            raise
        return "finished"

    def checkpoint(self) -> DelayedSubmission:
        """Called by submitit on preemption or before the time limit: the run's checkpoint is its last
        finished epoch, so the job requeued is this same job (it resumes from that checkpoint)."""
        signal.signal(signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG], signal.SIG_IGN)  # a second one: requeued already
        status_lib.write_job(Path(self.out), "requeued", {**(status_lib.read_job(Path(self.out)) or {})})
        return DelayedSubmission(self)


def submit_local(job: RunJob, folder: Path) -> submitit.Job:
    """Start ``job`` now in a fresh interpreter (a submitit LocalExecutor job), which sees no GPU unless
    ``job.gpu`` names one; the job's controller writes into ``folder/controllers.log``, not this terminal."""
    executor = submitit.LocalExecutor(folder, max_num_timeout=MAX_REQUEUES)
    executor.update_parameters(timeout_min=_LOCAL_TIMEOUT_MIN)
    with _output_to(Path(folder) / "controllers.log"):  # the controller inherits these: its messages go there
        return executor.submit(job)


def run_debug(job: RunJob, folder: Path) -> str:
    """Run ``job`` in this process (submitit's DebugExecutor: an error opens pdb post mortem)."""
    return submitit.DebugExecutor(folder).submit(job).result()


@dataclass(frozen=True)
class SlurmOptions:
    """What ``elrt batch --executor slurm`` asks of Slurm for every job (see ``elrt batch --help``).
    ``mem_gb`` and ``time_min`` per job; ``max_running``: the array's ``%`` limit; ``sbatch``: any
    other ``#SBATCH`` option, by its long name without dashes."""

    partition: str | None = None
    account: str | None = None
    gpus: int = 0
    cpus: int = 1
    mem_gb: float | None = None
    time_min: int = 240
    max_running: int = 64
    signal_delay_s: int = 120
    setup: tuple[str, ...] = ()
    sbatch: dict[str, str] = field(default_factory=dict)

    def parameters(self, name: str, after: Sequence[str] = ()) -> dict[str, Any]:
        """The parameters of submitit's SlurmExecutor for a job array named ``name``; ``after``: the job
        ids it waits for (``--dependency=afterok:...``; Slurm cancels it if one of them fails)."""
        memory = None if self.mem_gb is None else f"{round(self.mem_gb * 1024)}M"
        given = {
            "partition": self.partition,
            "account": self.account,
            "gpus_per_node": self.gpus or None,
            "mem": memory,
        }
        return {
            "job_name": name,
            "time": self.time_min,
            "cpus_per_task": self.cpus,
            "array_parallelism": self.max_running,
            "signal_delay_s": self.signal_delay_s,
            "setup": list(self.setup),
            "stderr_to_stdout": True,
            "additional_parameters": {"requeue": True, **self.sbatch, **_dependency(after, self.sbatch.get("dependency"))},
            **{k: v for k, v in given.items() if v is not None},
        }


def _dependency(after: Sequence[str], given: str | None = None) -> dict[str, str]:
    """The ``#SBATCH`` options that hold a job until every job of ``after`` has completed successfully,
    and, where the user gave a ``dependency`` of their own (``--sbatch``), until that one is met too."""
    if not after:
        return {}
    held = "afterok:" + ":".join(after)
    return {"dependency": f"{held},{given}" if given else held, "kill_on_invalid_dep": "yes"}


def classes(jobs: Sequence[RunJob], profile: str) -> dict[str, list[RunJob]]:
    """The jobs by resource class, in order: one class per network (a ResNet-56 run takes about three
    times a ResNet-20's), named ``elrt-<profile>-<model>``; one job array is submitted per class."""
    out: dict[str, list[RunJob]] = {}
    for job in jobs:
        out.setdefault(f"elrt-{profile}-{job.config['model']}", []).append(job)
    return out


class _OfflineSlurmExecutor(SlurmExecutor):
    """submitit's SlurmExecutor where no Slurm is installed: only to write the scripts it would submit."""

    @classmethod
    def affinity(cls) -> int:
        return 2


def slurm_scripts(
    jobs: Sequence[RunJob], profile: str, options: SlurmOptions, folder: Path, after: Sequence[str] = ()
) -> dict[str, str]:
    """The ``sbatch`` script of each class's job array (see :func:`classes`), as submitit writes them,
    each waiting for the jobs ``after`` names; nothing is submitted."""
    scripts = {}
    for name, members in classes(jobs, profile).items():
        executor = _OfflineSlurmExecutor(folder, max_num_timeout=MAX_REQUEUES)
        executor.update_parameters(**options.parameters(name, after))
        if len(members) > 1:  # what submitit sets for an array of this size (one job is no array)
            executor.parameters["map_count"] = len(members)
        scripts[name] = executor._make_submission_file_text(executor._submitit_command_str, "dry-run")
    return scripts


def submit_slurm(
    jobs: Sequence[RunJob], profile: str, options: SlurmOptions, folder: Path, after: Sequence[str] = ()
) -> list[tuple[RunJob, str]]:
    """Submit one job array per class of ``jobs``, each waiting for the Slurm jobs ``after`` names to
    complete successfully; each job with its Slurm job id (``<array id>_<index>``)."""
    submitted = []
    for name, members in classes(jobs, profile).items():
        executor = SlurmExecutor(folder, max_num_timeout=MAX_REQUEUES)
        executor.update_parameters(**options.parameters(name, after))
        with executor.batch():
            handles = [executor.submit(job) for job in members]
        submitted += [(job, handle.job_id) for job, handle in zip(members, handles)]
    return submitted
