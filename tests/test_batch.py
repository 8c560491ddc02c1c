"""``elrt batch`` with the local and debug executors, and ``elrt status``: at most ``--jobs`` runs at
once, a second pass trains nothing, two batches at once train each run once, a run killed with
``kill -9`` resumes from its checkpoint, a failing run is reported while the others finish, SIGTERM
and SIGHUP stop the batch and its runs, and a run interrupted by its time-limit signal is requeued and
ends with the weights of an uninterrupted run. Tiny runs (128 images, 4 epochs) of real CIFAR-10."""

import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from tiny_runs import endless, epochs_done, terminal_signals, tiny, wait_for

from elrt_core import profiles, records
from elrt_core.cli import main
from elrt_core.profiles import RunGroup
from elrt_core.study import batch, executors, plan, status
from elrt_core.train import checkpoint, run_folder

REPO = Path(__file__).resolve().parents[1]


GOOD = RunGroup(1, "resnet20", 2.0, ("dense", "tucker2", "matrix"), (0,))
FAILING = RunGroup(2, "resnet20", 1000.0, ("tucker2",), (0,))  # no Tucker-2 reaches 1000x fewer MACs: fails in the job


def test_a_batch_leaves_a_run_another_process_is_training_to_that_process(tmp_path, monkeypatch):
    import fcntl

    profile = profiles.load("smoke")
    run = plan.plan(profile)[0]
    out = tmp_path / profile.name / run.config.name
    assert not run_folder.busy(out)  # no folder yet
    out.mkdir(parents=True)
    monkeypatch.setattr(executors, "submit_local", lambda *a: pytest.fail("started a run that is busy"))
    logged = []
    pool = batch._LocalPool(batch._Settings(profile, tmp_path, "cpu", 1, None, False), None, logged.append)
    with open(out / run_folder.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert run_folder.busy(out)
        pool.start(run, "1/1")
    assert pool.report.skipped == [run.config.name] and not pool.active
    assert logged and logged[0].startswith("[busy]") and not (out / batch.CONFIG_FILE).exists()
    assert not run_folder.busy(out)  # released with its holder; the probe left no lock behind


def test_a_job_that_finds_its_folder_taken_is_left_to_the_other_process_not_failed(tmp_path, monkeypatch):
    profile = profiles.load("smoke")
    run = plan.plan(profile)[0]

    class Ended:  # a job that found the folder locked when it started (the folder was free when probed)
        job_id = "7"

        def done(self) -> bool:
            return True

    def submit(job, folder):
        status.write_job(Path(job.out), "busy", {"executor": "local", "job_id": "7"})
        return Ended()

    monkeypatch.setattr(executors, "submit_local", submit)
    pool = batch._LocalPool(batch._Settings(profile, tmp_path, "cpu", 1, None, False), None, lambda line: None)
    pool.start(run, "1/1")
    pool.reap()
    assert pool.report.skipped == [run.config.name] and not pool.report.failed


def test_local_jobs_get_one_gpu_each_round_robin(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,MIG-5e1f")
    assert batch._visible_gpus("cuda") == ["2", "MIG-5e1f"] and batch._visible_gpus("cpu") is None
    pool = batch._LocalPool(batch._Settings(profiles.load("smoke"), None, "cuda", 1, None, False), ["2", "MIG-5e1f"], print)
    given = []
    for i in range(3):
        given.append(pool._free_gpu())
        pool.active[i] = (None, None, 0.0, given[-1])
    assert given == ["2", "MIG-5e1f", "2"]
    del pool.active[0]
    assert pool._free_gpu() == "2"  # the least used


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory, cifar10_dir):
    """Three runs and one that fails, ``--jobs 2``, through the local executor."""
    prof = tiny(GOOD, FAILING)
    root = tmp_path_factory.mktemp("local")
    said = []
    report = batch.run(prof, jobs=2, threads=1, device="cpu", data_dir=str(cifar10_dir), root=root, log=said.append)
    return prof, root, report, said


@pytest.mark.slow
def test_local_executor_runs_at_most_jobs_at_once_and_reports_the_failing_run(local_batch):
    prof, root, report, said = local_batch
    good, failing = plan.plan(prof, 1), plan.plan(prof)[-1]
    assert sorted(report.finished) == sorted(r.config.name for r in good) and report.failed == [failing.config.name], said
    recs = [records.read(root / prof.name / r.config.name) for r in good]
    spans = [(dt.datetime.fromisoformat(r.provenance["started"]), dt.datetime.fromisoformat(r.provenance["ended"])) for r in recs]
    peak = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert peak == 2, spans  # two side by side, never three
    assert any("[failed]   " + failing.config.name + ": ValueError: the requested reduction is not reachable" in s for s in said)
    for rec in recs:
        job = rec.provenance["job"]
        assert job["executor"] == "local" and job["job_id"] and job["gpus"] is None and rec.provenance["resumptions"] == 0
        assert rec.provenance["torch_threads"] == 1
    assert "epoch   4/4" in (root / prof.name / good[0].config.name / batch.LOG_FILE).read_text()


@pytest.mark.slow
def test_a_second_pass_trains_nothing(local_batch):
    prof, root, _, _ = local_batch
    said = []
    again = batch.run(prof, runs=plan.plan(prof, 1), jobs=2, device="cpu", root=root, log=said.append)
    assert dataclasses.astuple(again)[:-1] == ([],) * 6 and "0 run(s) to train" in said[0]


@pytest.mark.slow
def test_status_names_done_and_failed_with_its_log(local_batch):
    prof, root, _, _ = local_batch
    found = {s.name: s for s in status.profile_status(prof, plan.plan(prof), root)}
    failing = plan.plan(prof)[-1].config.name
    assert [s.state for s in found.values()] == ["done", "done", "done", "failed"]
    assert found[failing].detail.startswith("ValueError: the requested reduction is not reachable")
    assert any("not reachable" in line for line in found[failing].log) and found[failing].job["executor"] == "local"


def test_status_reads_the_epochs_of_unfinished_runs(tmp_path):
    prof = profiles.load("smoke")
    first, second, third = plan.plan(prof)[:3]
    for run in (first, second):
        (tmp_path / prof.name / run.config.name).mkdir(parents=True)
    torch.save({"epoch": 1, "history": []}, tmp_path / prof.name / first.config.name / checkpoint.CHECKPOINT_FILE)
    (tmp_path / prof.name / second.config.name / checkpoint.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    got = status.profile_status(prof, [first, second, third], tmp_path)
    assert [(s.state, s.epoch, s.epochs) for s in got] == [("partial", 1, 2), ("partial", None, 2), ("missing", None, 2)]


@pytest.mark.slow
def test_two_batches_at_once_train_each_run_once(tmp_path, cifar10_dir):
    prof = tiny(RunGroup(1, "resnet20", 2.0, ("dense", "tucker2"), (1,)), epochs=2)
    reports = [None, None]

    def one(i: int) -> None:
        reports[i] = batch.run(
            prof, jobs=2, threads=1, device="cpu", data_dir=str(cifar10_dir), root=tmp_path, log=lambda s: None
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = {r.config.name for r in plan.plan(prof)}
    assert set(reports[0].finished) | set(reports[1].finished) == names
    assert not set(reports[0].finished) & set(reports[1].finished) and not reports[0].failed + reports[1].failed
    for name in names:
        log = (tmp_path / prof.name / name / batch.LOG_FILE).read_text()
        assert log.count("epoch   1/2") == 1, log  # trained once; the other batch left it alone


def _scheduler(script: str, root: Path, cifar10_dir: Path, log: Path) -> subprocess.Popen:
    """A batch in its own process session (so the test can signal all it started, and only that)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "ELRT_DATA_DIR": str(cifar10_dir), "ELRT_RESULTS": str(root)}
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=terminal_signals,
    )


def _still(proc: subprocess.Popen, log: Path) -> bool:
    """True while ``proc`` runs; the test fails with its log once it has ended."""
    if proc.poll() is not None:
        pytest.fail(f"the batch ended with status {proc.returncode}:\n{log.read_text()}")
    return True


def _gone(*sessions: int) -> bool:
    """Whether no process is left in any of ``sessions`` (the batch's, and each job's own: its pid)."""
    for session in sessions:
        try:
            os.killpg(session, 0)
            return False
        except ProcessLookupError:
            continue
    return True


def _kill(*sessions: int) -> None:
    for session in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session, signal.SIGKILL)


KILLED = RunGroup(1, "resnet20", 2.0, ("tucker2",), (2,))
KILLED_EPOCHS = 6


@pytest.mark.slow
def test_a_run_killed_with_kill_9_resumes_from_its_checkpoint_in_the_debug_executor(tmp_path, cifar10_dir):
    prof = tiny(KILLED, epochs=KILLED_EPOCHS)
    (run,) = plan.plan(prof)
    out = tmp_path / prof.name / run.config.name
    script = (
        f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from tiny_runs import tiny; "
        "from elrt_core.profiles import RunGroup; from elrt_core.study import batch; "
        f"batch.run(tiny({KILLED!r}, epochs={KILLED_EPOCHS}), jobs=1, threads=1, device='cpu')"
    )
    proc, job = _scheduler(script, tmp_path, cifar10_dir, tmp_path / "batch.log"), {}
    try:
        job = wait_for(lambda: epochs_done(out) >= 1 and status.read_job(out), 240, "the first checkpoint")
    finally:
        _kill(proc.pid, job.get("pid", proc.pid))  # the scheduler and the job's controller; the training process
        proc.wait()
    wait_for(lambda: _gone(proc.pid, job["pid"]) and not run_folder.busy(out), 30, "the end of the killed processes")
    assert not (out / records.RECORD_FILE).exists(), "the run finished before it was killed"
    before = status.run_status(run, out.parent)
    assert before.state == "partial" and 1 <= before.epoch < KILLED_EPOCHS
    report = batch.run(
        prof, executor="debug", threads=1, device="cpu", data_dir=str(cifar10_dir), root=tmp_path, log=lambda s: None
    )
    rec = records.read(out)
    assert report.finished == [run.config.name] and len(rec.history) == KILLED_EPOCHS
    assert rec.provenance["resumptions"] == 1 and rec.provenance["job"]["executor"] == "debug"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_batch_and_its_runs(sig, tmp_path, cifar10_dir):
    """Issue 29, defect 10: the scheduler stops its runs as for Ctrl-C (exit 130) instead of dying alone.
    The smoke profile's runs last hours here (:func:`endless`), so the signal always finds the first one busy."""
    first = plan.plan(endless(), 1, ["dense"])[0]
    out = tmp_path / "smoke" / first.config.name
    script = (
        f"import sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from tiny_runs import endless; "
        "from elrt_core import profiles; long = endless(); profiles.load = lambda name, **kwargs: long; "
        "from elrt_core.cli import main; "
        "sys.exit(main(['batch', '--profile', 'smoke', '--methods', 'dense', '--jobs', '1', '--threads', '1', '--device', 'cpu']))"
    )
    log = tmp_path / "batch.log"
    proc, job = _scheduler(script, tmp_path, cifar10_dir, log), {}
    try:
        job = wait_for(lambda: _still(proc, log) and run_folder.busy(out) and status.read_job(out), 240, "the first run's start")
        os.kill(proc.pid, sig)  # the scheduler only
        assert proc.wait(timeout=90) == 130, log.read_text()
        wait_for(lambda: _gone(proc.pid, job["pid"]), 30, "the end of every process of the batch")
    finally:
        _kill(proc.pid, job.get("pid", proc.pid))
    text = log.read_text()
    assert f"[stopped]  {first.config.name} (terminated by {sig.name})" in text and "elrt: interrupted" in text
    assert not run_folder.busy(out) and not (out / records.RECORD_FILE).exists()


@pytest.mark.slow
def test_a_time_limit_signal_requeues_the_run_which_ends_as_if_never_interrupted(local_batch, tmp_path, cifar10_dir):
    """submitit's USR2 -> RunJob.checkpoint -> requeue -> the job resumes its checkpoint: the weights
    equal those of the uninterrupted run of the same config (trained by the local_batch fixture)."""
    prof, done_root, _, _ = local_batch
    run = plan.plan(prof)[0]
    job = batch._Settings(prof, tmp_path, "cpu", 1, str(cifar10_dir), False).job(run, gpu="3")  # a CPU run: only named
    out = Path(job.out)
    out.mkdir(parents=True)
    handle = executors.submit_local(job, status.submitit_folder(out.parent))
    said = wait_for(lambda: (epochs_done(out) >= 1 and status.read_job(out)) or None, 240, "the first checkpoint")
    assert not (out / records.RECORD_FILE).exists(), "the run finished before the signal"
    os.kill(said["pid"], signal.SIGUSR2)
    wait_for(handle.done, 240, "the requeued job's end", step=0.2)
    rec, job_file = records.read(out), status.read_job(out)
    assert rec.finished and rec.provenance["resumptions"] == 1 and job_file["starts"] == 2 and job_file["state"] == "finished"
    assert rec.provenance["job"]["gpus"] == "3"  # the one GPU handed to the job is all it sees
    mine = torch.load(out / checkpoint.WEIGHTS_FILE, weights_only=True)
    theirs = torch.load(done_root / prof.name / run.config.name / checkpoint.WEIGHTS_FILE, weights_only=True)
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    steady = [(h["train_loss"], h["test_loss"], h["test_top1"]) for h in rec.history]
    assert steady == [
        (h["train_loss"], h["test_loss"], h["test_top1"]) for h in records.read(done_root / prof.name / run.config.name).history
    ]


def test_the_status_command_prints_a_table_and_writes_json(tmp_path, capsys):
    assert (
        main(
            [
                "status",
                "--profile",
                "smoke",
                "--results",
                str(tmp_path),
                "--max-priority",
                "1",
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "8 runs: 8 missing" in out
    assert json.loads((tmp_path / "s.json").read_text())["runs"][0]["state"] == "missing"


COMPRESSION = RunGroup(1, "resnet20", 2.0, ("compress", "tucker2", "dense"), (0,))  # compress listed before its dense run


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "debug"])
def test_a_compression_run_waits_for_the_dense_run_it_decomposes(executor, tmp_path, cifar10_dir):
    """With two jobs the compression run could start beside its dense run and fail for want of its weights;
    it starts when the dense run has ended, and the batch trains both (plan order puts compress first here)."""
    prof = tiny(COMPRESSION)
    compress, tucker2, dense = plan.plan(prof)
    assert compress.config.decomposes == dense.config.hash
    said = []
    options = {"jobs": 2, "threads": 1} if executor == "local" else {}
    report = batch.run(
        prof, executor=executor, device="cpu", data_dir=str(cifar10_dir), root=tmp_path, log=said.append, **options
    )
    assert sorted(report.finished) == sorted(r.config.name for r in (compress, tucker2, dense)), said
    recs = {r.method: records.read(tmp_path / prof.name / r.config.name) for r in (compress, tucker2, dense)}
    start = {m: dt.datetime.fromisoformat(rec.provenance["started"]) for m, rec in recs.items()}
    assert start["compress"] >= dt.datetime.fromisoformat(recs["dense"].provenance["ended"])
    starts = [s for s in said if s.startswith("[start]")]
    assert [s.split()[1] for s in starts] == [tucker2.config.name, dense.config.name, compress.config.name]


def test_the_next_run_is_the_first_that_waits_for_no_other():
    """What the local and debug executors start next, and how Slurm splits its submissions (no training)."""
    prof = tiny(RunGroup(1, "resnet20", 2.0, ("compress", "dense"), (0, 1)))
    c0, d0, c1, d1 = plan.plan(prof)
    assert (c0.config.decomposes, c1.config.decomposes) == (d0.config.hash, d1.config.hash)
    queue = [c0, d0, c1, d1]
    assert batch._ready(queue) is d0 and queue == [c0, c1, d1]  # compress s0 waits for its dense run in the queue
    assert batch._ready(queue, {d0.config.hash}) is d1  # ... or running
    assert batch._ready(queue, {d0.config.hash, d1.config.hash}) is None and queue == [c0, c1]  # everything left waits
    assert batch._ready(queue) is c0 and batch._ready(queue) is c1  # dense runs ended (or trained elsewhere)
    first, later = batch._waves([c0, d0, c1], {d1.config.hash})  # dense s1 held in Slurm already
    assert (first, later) == ([d0], [c0, c1])
    assert batch._by_dense(later) == {d0.config.hash: [c0], d1.config.hash: [c1]}
    assert batch._waves([c0, c1], set()) == ([c0, c1], [])  # dense runs done: nothing to wait for
