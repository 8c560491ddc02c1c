"""``elrt batch --executor slurm``: the job scripts checked without Slurm, the options refused where
they do not apply, and a real one-node Slurm (``scripts/slurm-local.sh``): a profile submitted as a
job array, one job preempted with ``scancel --signal``, every record landing and the preempted run
resumed from its checkpoint. Where Slurm cannot be started here, that test is skipped with one line."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_runs import epochs_done, tiny, wait_for

from elrt_core import profiles, records
from elrt_core.cli import main
from elrt_core.profiles import RunGroup
from elrt_core.study import batch, executors, plan, status

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm-local.sh"


def _jobs(tmp_path: Path) -> list[executors.RunJob]:
    prof = tiny(RunGroup(1, "resnet20", 2.0, ("dense", "tucker2"), (0,)), RunGroup(2, "resnet56", 2.0, ("dense",), (0,)))
    settings = batch._Settings(prof, tmp_path, "cuda", 4, None, False)
    return [settings.job(r) for r in plan.plan(prof)]


def test_slurm_scripts_hold_the_array_its_limit_the_signal_resources_and_setup_lines(tmp_path):
    options = executors.SlurmOptions(
        partition="gpu",
        account="proj",
        gpus=1,
        cpus=4,
        mem_gb=8,
        time_min=60,
        max_running=2,
        signal_delay_s=90,
        setup=("source /shared/venv/bin/activate", "export ELRT_DATA_DIR=/shared/cifar10"),
        sbatch={"qos": "high"},
    )
    scripts = executors.slurm_scripts(_jobs(tmp_path), "smoke", options, tmp_path / "jobs")
    assert list(scripts) == ["elrt-smoke-resnet20", "elrt-smoke-resnet56"]  # one array per network, in plan order
    twenty, fifty_six = scripts.values()
    for line in (
        "#SBATCH --array=0-1%2",
        "#SBATCH --job-name=elrt-smoke-resnet20",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --requeue",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=8192M",
        "#SBATCH --time=60",
        "#SBATCH --qos=high",
    ):
        assert line in twenty.splitlines(), line
    assert "--array" not in fifty_six and "#SBATCH --job-name=elrt-smoke-resnet56" in fifty_six  # one job is no array
    setup = twenty.index("source /shared/venv/bin/activate")
    assert setup < twenty.index("export ELRT_DATA_DIR=/shared/cifar10") < twenty.index("srun ")
    assert f"{sys.executable} -u -m submitit.core._submit {tmp_path / 'jobs'}" in twenty
    assert not (tmp_path / "jobs").exists()  # writing the scripts submits and creates nothing


def test_dry_run_prints_the_scripts_and_creates_nothing(tmp_path, capsys):
    argv = ["batch", "--profile", "smoke", "--executor", "slurm", "--dry-run", "--results", str(tmp_path / "r")]
    assert main([*argv, "--max-running", "3", "--time-min", "30", "--setup", "module load python"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-9%3" in out and "#SBATCH --time=30" in out and "module load python" in out
    assert "not submitted (--dry-run)" in out and not (tmp_path / "r").exists()


def test_dry_run_holds_the_compression_runs_until_their_dense_runs(tmp_path, capsys):
    argv = ["batch", "--profile", "cpu-full", "--executor", "slurm", "--dry-run", "--results", str(tmp_path / "r")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    first, *held = out.split("# ---- elrt-cpu-full-resnet20 after job ")  # the compression runs come last, one each
    assert "#SBATCH --dependency" not in first and "# ---- elrt-cpu-full-resnet20: " in first
    full = profiles.load("cpu-full")  # compress waits for the 15-epoch dense run, compress-10 for the 10-epoch one
    dense = [full.config(m, "resnet20", 2.0, seed).name for m in ("dense", "dense-10") for seed in (0, 1, 2)]
    assert sorted(h.split(":")[0] for h in held) == sorted(f"<job id of {d}>" for d in dense)
    for h in held:  # each seed of the compression baselines, waiting for its own dense run
        dense = h[len("<job id of ") : h.index(">")]
        assert h.split(": ", 1)[1].startswith("1 run(s); not submitted (--dry-run)")
        assert f"#SBATCH --dependency='afterok:<job id of {dense}>'" in h and "#SBATCH --kill-on-invalid-dep=yes" in h


def test_a_dependency_given_with_sbatch_is_kept_beside_the_dense_run_s():
    params = executors.SlurmOptions(sbatch={"dependency": "singleton"}).parameters("x", after=("7_0",))["additional_parameters"]
    assert params["dependency"] == "afterok:7_0,singleton" and params["kill_on_invalid_dep"] == "yes"
    alone = executors.SlurmOptions(sbatch={"dependency": "singleton"}).parameters("x")["additional_parameters"]
    assert alone["dependency"] == "singleton" and "kill_on_invalid_dep" not in alone


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--partition", "gpu"], "--partition applies to --executor slurm only"),
        (["--executor", "debug", "--dry-run"], "--dry-run applies to --executor slurm only"),
        (["--executor", "slurm", "--dry-run", "--jobs", "2"], "--jobs applies to --executor local only"),
        (["--executor", "slurm", "--dry-run", "--minutes", "5"], "--minutes applies to --executor local only; give --time-min"),
        (["--executor", "slurm", "--dry-run", "--sbatch", "qos"], "--sbatch 'qos': expected KEY=VALUE"),
        (["--executor", "slurm", "--mem", "0"], "--mem: must be > 0"),
        (["--executor", "nomad"], "invalid choice: 'nomad'"),
        (["--executor", "debug", "--jobs", "2"], "--jobs applies to --executor local only"),
    ],
)
def test_options_that_do_not_apply_are_refused_in_one_line(argv, needle, tmp_path, capsys):
    assert main(["batch", "--profile", "smoke", "--results", str(tmp_path), *argv]) == 2
    assert needle in capsys.readouterr().err and not (tmp_path / "smoke").exists()


def test_slurm_without_sbatch_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["batch", "--profile", "smoke", "--executor", "slurm", "--results", str(tmp_path)]) == 2
    assert "no `sbatch` here; run on a Slurm login node, or add --dry-run" in capsys.readouterr().err


def test_status_calls_a_run_failed_whose_slurm_job_is_gone_without_a_record(tmp_path, monkeypatch):
    prof = tiny(RunGroup(1, "resnet20", 2.0, ("dense", "tucker2"), (0,)))
    queued, running = plan.plan(prof)
    base = tmp_path / prof.name
    status.write_submitted(base / queued.config.name, "slurm", "9_0")
    status.write_submitted(base / running.config.name, "slurm", "9_1")
    status.write_job(base / running.config.name, "running", {"executor": "slurm", "job_id": "9_1", "host": "node7"})
    status.submitit_folder(base).mkdir(parents=True)
    (status.submitit_folder(base) / "9_0_0_log.out").write_text("slurmstepd: error: *** JOB 10 CANCELLED DUE TO TIME LIMIT ***\n")
    monkeypatch.setattr(status, "slurm_active", lambda ids: {"9_1"})
    assert [s.state for s in status.profile_status(prof, plan.plan(prof), tmp_path)] == ["failed", "running"]
    gone = status.profile_status(prof, [queued], tmp_path)[0]
    assert gone.detail.startswith("Slurm job 9_0 ended without a record") and "DUE TO TIME LIMIT" in gone.log[-1]
    monkeypatch.setattr(status, "slurm_active", lambda ids: None)  # no Slurm to ask: the job files are believed
    assert [s.state for s in status.profile_status(prof, plan.plan(prof), tmp_path)] == ["queued", "running"]


# ---- a real one-node Slurm ---------------------------------------------------------------------------
def _signal(job_id: str) -> None:
    """``scancel --signal USR2`` to one job, as a preemption would; scancel retries while Slurm requeues
    the job ("try again later") and would signal the requeued job too, so it is stopped after 3 s."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(["scancel", "--signal=USR2", job_id], timeout=3)


@pytest.fixture(scope="module")
def slurm():
    """The one-node Slurm of scripts/slurm-local.sh (CI's .ci/run starts it; else this starts it, and
    stops it again afterwards), or a skip saying in one line why it cannot start here."""
    running = subprocess.run([str(SCRIPT), "status"], timeout=60).returncode == 0
    started = subprocess.run([str(SCRIPT), "start", "--no-install"], capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        pytest.skip(f"Slurm cannot be started here: {(started.stderr.strip().splitlines() or ['no reason given'])[-1]}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = started.stdout.strip().split("=", 1)[1]  # for sbatch, squeue, scancel and the jobs
    yield os.environ["SLURM_CONF"]
    if before is None:
        os.environ.pop("SLURM_CONF")
    else:
        os.environ["SLURM_CONF"] = before
    if not running:
        subprocess.run([str(SCRIPT), "stop"], timeout=60)


@pytest.mark.slow
def test_a_profile_runs_as_a_slurm_job_array_and_a_preempted_run_resumes(slurm, tmp_path, cifar10_dir):
    prof = tiny(RunGroup(1, "resnet20", 2.0, ("dense", "tucker2"), (3,)), epochs=6)
    victim, other = plan.plan(prof)
    said = []
    options = executors.SlurmOptions(time_min=20, max_running=2, signal_delay_s=30)
    report = batch.run(
        prof, executor="slurm", slurm=options, threads=1, device="cpu", data_dir=str(cifar10_dir), root=tmp_path, log=said.append
    )
    assert len(report.submitted) == 2 and all("_" in s for s in report.submitted), said  # one array: <id>_<index>
    out = tmp_path / prof.name / victim.config.name
    job_id = json.loads((status.jobs_folder(out) / f"{out.name}.submit.json").read_text())["job_id"]
    wait_for(lambda: epochs_done(out) >= 1, 300, "the victim's first checkpoint")
    assert not (out / records.RECORD_FILE).exists(), "the victim finished before it was preempted"
    _signal(job_id)
    again = batch.run(prof, executor="slurm", slurm=options, device="cpu", root=tmp_path, log=said.append)
    assert not again.submitted and victim.config.name in again.skipped  # queued or running in Slurm: not submitted twice
    t0 = time.time()
    while not all(s.state == "done" for s in status.profile_status(prof, plan.plan(prof), tmp_path)):
        assert time.time() - t0 < 300, [s.as_dict() for s in status.profile_status(prof, plan.plan(prof), tmp_path)]
        time.sleep(1)
    preempted, untouched = records.read(out), records.read(tmp_path / prof.name / other.config.name)
    assert preempted.provenance["resumptions"] == 1 and untouched.provenance["resumptions"] == 0
    assert preempted.provenance["job"] == {"executor": "slurm", "job_id": job_id, "gpus": None}
    assert status.read_job(out)["starts"] == 2 and len(preempted.history) == 6


@pytest.mark.slow
def test_a_compression_run_waits_in_slurm_for_the_dense_run_it_decomposes(slurm, tmp_path, cifar10_dir):
    prof = tiny(RunGroup(1, "resnet20", 2.0, ("compress", "dense"), (0,)), epochs=2)
    compress, dense = plan.plan(prof)
    said = []
    options = executors.SlurmOptions(time_min=20, max_running=2)
    report = batch.run(
        prof, executor="slurm", slurm=options, threads=1, device="cpu", data_dir=str(cifar10_dir), root=tmp_path,
        log=said.append, wait=True,
    )  # fmt: skip
    assert sorted(report.finished) == sorted([compress.config.name, dense.config.name]), said
    dense_job = status.read_job(tmp_path / prof.name / dense.config.name)["job_id"]
    assert f"[held]     {compress.config.name}: waits for Slurm job {dense_job} (its dense run)" in said
    recs = {r.method: records.read(tmp_path / prof.name / r.config.name) for r in (compress, dense)}
    assert recs["compress"].provenance["started"] >= recs["dense"].provenance["ended"]  # ISO times, one clock
