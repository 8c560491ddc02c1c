"""Ready for a lent GPU, dry-run on the CPU: the tree stays small enough to travel, the data pack
round-trips exactly and catches damage, the device's calls unpack, ready the tree and train with
``elrt batch`` into normal records, and what comes back fits a device call and lands in results/ intact."""

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from elrt_core import profiles, records
from elrt_core.cli import main
from elrt_core.data import load
from elrt_core.data.checksums import BINARY_MD5
from elrt_core.gpu import calls, collect, jobs, pack, source
from elrt_core.profiles import RunGroup
from elrt_core.study import batch as study_batch
from elrt_core.study.plan import plan

REPO = Path(__file__).resolve().parents[1]
MIB = 1 << 20


def test_the_tracked_tree_stays_below_20_mib():
    size = pack.tracked_bytes(REPO)
    assert 0 < size < pack.TREE_LIMIT_BYTES, (
        f"git tracks {size / MIB:.1f} MiB; keep it under 20 MiB (weights only where the book reads them)"
    )


# ---- pack / unpack ----------------------------------------------------------------------------------
def test_webp_tiles_round_trip_exactly_with_a_partial_last_row():
    x = np.random.default_rng(0).integers(0, 256, (250, 3, 32, 32), dtype=np.uint8)
    picture = pack._tile(x)
    assert picture.shape == (3 * 32, 100 * 32, 3) and not picture[64:, 50 * 32 :].any()  # padding is black
    assert np.array_equal(picture[32:64, 32:64].transpose(2, 0, 1), x[101])  # image 101: row 1, column 1
    assert np.array_equal(pack._decode(pack._encode(x), len(x)), x)


def test_groups_fill_in_order_and_refuse_a_piece_too_large():
    assert pack._assign_groups([5, 5, 5, 2, 9], limit=10) == [1, 1, 2, 2, 3]
    with pytest.raises(pack.PackError, match="does not fit"):
        pack._assign_groups([5, 11], limit=10)


@pytest.fixture(scope="module")
def smoke_plan():
    p = profiles.load("smoke")
    return p, [r.config.name for r in plan(p)]


@pytest.fixture(scope="module")
def packed(tmp_path_factory, cifar10_dir, smoke_plan):
    """A pack of the real CIFAR-10 in groups of at most 30 MiB, with the checkpoint of one unfinished smoke run."""
    prof, names = smoke_plan
    results = tmp_path_factory.mktemp("here-results")
    (results / "smoke" / names[0]).mkdir(parents=True)
    (results / "smoke" / names[0] / "checkpoint.pt").write_bytes(b"resume me" * 1000)
    (results / "smoke" / names[1]).mkdir(parents=True)  # finished: its checkpoint stays behind
    (results / "smoke" / names[1] / "checkpoint.pt").write_bytes(b"old")
    (results / "smoke" / names[1] / "record.json").write_text("{}")
    out = tmp_path_factory.mktemp("pack")
    manifest = pack.pack(REPO, data_dir=cifar10_dir, profile=prof, results=results, pack_dir=out, limit=30 * MIB)
    return out, manifest


@pytest.mark.slow
def test_pack_pieces_fit_their_groups_and_match_the_manifest(packed, smoke_plan):
    out, manifest = packed
    assert [g["folder"] for g in manifest["groups"]] == ["g1", "g2", "g3", "g4"]
    assert all(0 < g["bytes"] <= 30 * MIB for g in manifest["groups"])
    for e in manifest["pieces"]:
        assert hashlib.sha256((out / e["group"] / e["name"]).read_bytes()).hexdigest() == e["sha256"]
    kinds = [e["kind"] for e in manifest["pieces"]]
    assert kinds.count("images") == 12 and kinds.count("labels") == 1 and kinds.count("resume") == 1
    resume = next(e for e in manifest["pieces"] if e["kind"] == "resume")
    assert resume["runs"] == [f"smoke/{smoke_plan[1][0]}/checkpoint.pt"]
    assert manifest["binary_md5"] == BINARY_MD5 and len(manifest["source"]["commit"]) == 40
    assert pack.carry_plan(manifest, Path(".device/pack"))[1] == [".device/pack/manifest.json", ".device/pack/g2"]


@pytest.mark.slow
def test_unpack_gives_the_verified_binary_layout_and_the_checkpoint(packed, cifar10, smoke_plan, tmp_path):
    out, _ = packed
    report = pack.unpack(out, tmp_path / "data", tmp_path / "results")
    assert "binary layout" in report["data"] and "md5 verified" in report["data"] and not report["data_reused"]
    for name, md5 in BINARY_MD5.items():
        assert hashlib.md5((tmp_path / "data" / "cifar-10-batches-bin" / name).read_bytes()).hexdigest() == md5
    again = load("cifar10", tmp_path / "data")  # the loader's own md5 and decoded-sha256 checks pass
    assert again.source.startswith("binary layout") and bool((again.x_test == cifar10.x_test).all())
    name = smoke_plan[1][0]
    assert report["checkpoints_written"] == [f"smoke/{name}/checkpoint.pt"]
    assert (tmp_path / "results" / "smoke" / name / "checkpoint.pt").read_bytes() == b"resume me" * 1000
    (tmp_path / "results" / "smoke" / name / "checkpoint.pt").write_bytes(b"newer, made on the device")
    second = pack.unpack(out, tmp_path / "data", tmp_path / "results")  # a warm machine: nothing is redone or overwritten
    assert second["data_reused"] and second["checkpoints_kept"] == [f"smoke/{name}/checkpoint.pt"]
    assert (tmp_path / "results" / "smoke" / name / "checkpoint.pt").read_bytes() == b"newer, made on the device"


def _linked_copy(src: Path, dst: Path) -> None:
    """A pack folder whose pieces are links to ``src``'s (so one piece can be replaced without copying 100 MiB)."""
    dst.mkdir()
    shutil.copy(src / pack.MANIFEST, dst / pack.MANIFEST)
    for group in (p for p in src.iterdir() if p.is_dir()):
        (dst / group.name).mkdir()
        for f in group.iterdir():
            (dst / group.name / f.name).symlink_to(f)


@pytest.mark.slow
def test_a_corrupted_or_missing_piece_stops_unpack_before_anything_is_written(packed, tmp_path):
    out, manifest = packed
    damaged = tmp_path / "damaged"
    _linked_copy(out, damaged)
    victim = next(e for e in manifest["pieces"] if e["name"] == "images-07.webp")
    data = bytearray((out / victim["group"] / victim["name"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / victim["group"] / victim["name"]).unlink()
    (damaged / victim["group"] / victim["name"]).write_bytes(bytes(data))
    with pytest.raises(pack.PackError, match=rf"{victim['group']}/images-07.webp is corrupted"):
        pack.unpack(damaged, tmp_path / "data", tmp_path / "results")
    shutil.rmtree(damaged / "g4")
    assert (
        main(
            [
                "gpu",
                "unpack",
                "--pack",
                str(damaged),
                "--data-out",
                str(tmp_path / "data"),
                "--results",
                str(tmp_path / "results"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_pack_again_reuses_the_pieces_and_regroups_them(packed, cifar10_dir, tmp_path):
    out, manifest = packed
    copy = tmp_path / "pack"
    shutil.copytree(out, copy)
    said = []
    again = pack.pack(REPO, data_dir=cifar10_dir, pack_dir=copy, limit=60 * MIB, log=said.append)
    assert any("reusing" in s for s in said)
    assert [g["folder"] for g in again["groups"]] == ["g1", "g2"] and not (copy / "g3").exists()
    same = {e["name"]: e["sha256"] for e in manifest["pieces"] if e["kind"] != "resume"}
    assert {e["name"]: e["sha256"] for e in again["pieces"]} == same  # no profile given: no checkpoints
    pack.verify_pieces(copy, again)


@pytest.mark.slow
def test_device_calls_carry_one_group_each_and_fit_the_tool(packed):
    _, manifest = packed
    calls_ = calls.device_calls(manifest, Path(".device/pack"), profile="paper", minutes=8)
    assert [c.carry for c in calls_] == pack.carry_plan(manifest, Path(".device/pack")) and len(calls_) == 4
    assert all(len(c.command) <= calls.COMMAND_LIMIT and c.timeout_s <= calls.CALL_LIMIT_S for c in calls_)
    assert "setsid" in calls_[0].command and "gpu bench" in calls_[0].command and "gpu unpack" not in calls_[0].command
    last = calls_[-1].command
    assert (
        last.index("gpu unpack --profile paper")
        < last.index(f". {jobs.SOURCE_ENV};")
        < last.index(f"flock -w {calls.BENCH_S} .device/results/gpu.lock true")
        < last.index("batch --profile paper --executor local --device cuda --jobs 12 --threads 1 --minutes 8 ")
        < last.index("status --profile paper --results .device/results --json .device/results/gpu/status-paper.json")
        < last.index('gpu collect --out "$OUT"')
    )
    single = calls.device_calls({"groups": [{"folder": "g1"}]}, minutes=8)[0].command
    assert "setsid" not in single and "flock" not in single
    assert single.index(f"timeout {calls.BENCH_S} $E gpu bench") < single.index("--minutes 5 ")  # the bench's time comes first
    with pytest.raises(ValueError, match="no room"):
        calls.device_calls(manifest, minutes=9)


# ---- source state -----------------------------------------------------------------------------------
def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True)


def test_source_state_matches_an_unchanged_copy_and_names_changes(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "a.py").write_text("x = 1\n")
    (repo / "b.txt").write_text("b\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "c")
    state = source.state(repo)
    assert set(state["files"]) == {"pkg/a.py", "b.txt"} and not state["dirty"]
    copy = tmp_path / "copy"  # what a device call brings: the files, no .git
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns(".git"))
    assert source.verify(copy, state) == {"commit": state["commit"], "dirty": False, "changed": [], "files_checked": 2}
    (copy / "pkg" / "a.py").write_text("x = 2\n")
    (copy / "b.txt").unlink()
    verified = source.verify(copy, state)
    assert verified["dirty"] and sorted(verified["changed"]) == ["b.txt", "pkg/a.py"]
    assert source.environment(verified) == {"ELRT_SOURCE_COMMIT": state["commit"], "ELRT_SOURCE_DIRTY": "1"}


def test_records_take_the_checked_commit_where_git_cannot_answer(tmp_path, monkeypatch):
    monkeypatch.setenv("ELRT_SOURCE_COMMIT", "a" * 40)
    monkeypatch.setenv("ELRT_SOURCE_DIRTY", "0")
    assert records.git_state(tmp_path) == {"commit": "a" * 40, "dirty": False}
    assert records.git_state(REPO)["commit"] != "a" * 40  # a real checkout answers for itself


# ---- the device's work, dry-run on the CPU ----------------------------------------------------------
def test_bench_waits_for_the_gpu_lock(tmp_path):
    fd = os.open(tmp_path / jobs.LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(TimeoutError, match="still held"), jobs.gpu_lock(tmp_path, wait_s=0.5, log=lambda s: None):
            pass
    finally:
        os.close(fd)
    with jobs.gpu_lock(tmp_path, wait_s=0.0) as waited:
        assert waited < 0.5


@pytest.mark.slow
def test_bench_set_on_the_cpu_writes_records_per_device(tmp_path):
    argv = [
        "gpu",
        "bench",
        "--device",
        "cpu",
        "--models",
        "resnet20",
        "--ratios",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--batch-size",
        "4",
        "--results",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (path,) = (tmp_path / "bench" / "cpu").glob("*/resnet20-tucker2-2x-b4-channels_last.json")
    rec = json.loads(path.read_text())
    assert rec["kind"] == "speedup" and path.parent.name == records.device_slug(rec["provenance"]["device_name"])
    assert rec["dense"]["breakdown"] and rec["lowrank"]["breakdown"]  # the CPU has a breakdown; CUDA records have none


def test_bench_tables_read_records_without_a_cpu_breakdown(tmp_path):
    from elrt_core.study import bench_records

    entry = {"train_step_ms": 10.0, "infer_ms": 3.0, "activation_bytes": 100}
    records.write_json(
        tmp_path / "bench" / "cuda" / "h" / "r.json",
        {
            "kind": "speedup",
            "model": "resnet20",
            "format": "tucker2",
            "variant": "channels_last",
            "batch_size": 128,
            "macs_ratio": 2.0,
            "train_speedup": 1.1,
            "infer_speedup": 1.2,
            "memory_ratio": 1.5,
            "dense": entry,
            "lowrank": entry,
            "provenance": {"device_name": "NVIDIA H100"},
        },
    )
    table = bench_records.speedup_table(SimpleNamespace(root=tmp_path))
    assert table["train_speedup_best"].isna().all() and table["activation_ratio"].notna().all()
    assert bench_records.thresholds(SimpleNamespace(root=tmp_path))["measured"].notna().all()
    assert bench_records.breakdown_table(SimpleNamespace(root=tmp_path)) is None  # no CPU breakdown


def test_seed_records_copies_what_the_tree_holds_and_keeps_the_rest(tmp_path):
    prof = profiles.load("smoke")
    (tmp_path / "tree" / "smoke" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "smoke" / "a" / "record.json").write_text("tree")
    (tmp_path / "tree" / "smoke" / "b").mkdir(parents=True)
    (tmp_path / "tree" / "smoke" / "b" / "record.json").write_text("tree")
    (tmp_path / "dev" / "smoke" / "b").mkdir(parents=True)
    (tmp_path / "dev" / "smoke" / "b" / "record.json").write_text("device")
    assert jobs.seed_records(prof, tmp_path / "tree", tmp_path / "dev") == 1
    assert (tmp_path / "dev" / "smoke" / "a" / "record.json").read_text() == "tree"
    assert (tmp_path / "dev" / "smoke" / "b" / "record.json").read_text() == "device"


def test_arrive_names_the_packed_commit_and_copies_the_tree_records(tmp_path):
    tree = tmp_path / "tree"
    (tree / "results" / "smoke" / "a").mkdir(parents=True)
    (tree / "results" / "smoke" / "a" / "record.json").write_text("tree")
    (tree / "code.py").write_text("print(1)\n")
    state = {"commit": "c" * 40, "files": {"code.py": source.blob_id(tree / "code.py")}}
    got = jobs.arrive(tree, state, profiles.load("smoke"), tmp_path / "dev", log=lambda s: None)
    assert got["records_copied"] == 1 and (tmp_path / "dev" / "smoke" / "a" / "record.json").read_text() == "tree"
    assert (tree / jobs.SOURCE_ENV).read_text() == f"export ELRT_SOURCE_COMMIT={'c' * 40}\nexport ELRT_SOURCE_DIRTY=0\n"
    (tree / "code.py").write_text("print(2)\n")
    assert not jobs.arrive(tree, state, profiles.load("smoke"), tmp_path / "dev", log=lambda s: None)["records_copied"]
    assert (tree / jobs.SOURCE_ENV).read_text().endswith("ELRT_SOURCE_DIRTY=1\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cifar10_dir):
    """The training of the device's last call, on the CPU: ``elrt batch --executor local`` of a two-run
    smoke profile (dense and Tucker-2, seed 0) into the device's results folder, then its status report."""
    smoke = profiles.load("smoke")
    prof = dataclasses.replace(smoke, runs=(RunGroup(1, "resnet20", 2.0, ("dense", "tucker2"), (0,)),))
    results = tmp_path_factory.mktemp("device-results")
    report = study_batch.run(prof, jobs=2, threads=1, device="cpu", data_dir=str(cifar10_dir), root=results, log=lambda s: None)
    main(["status", "--profile", "smoke", "--results", str(results), "--json", str(results / "gpu" / "status-smoke.json")])
    return prof, results, report


@pytest.mark.slow
def test_the_device_batch_writes_normal_records_and_a_status_report(trained):
    prof, results, report = trained
    names = [r.config.name for r in plan(prof)]
    assert sorted(report.finished) == sorted(names) and not report.failed
    for name in names:
        rec = records.read(results / "smoke" / name)
        assert rec.finished and rec.provenance["device"] == "cpu" and rec.provenance["profile"] == "smoke"
    table = {r["name"]: r["state"] for r in json.loads((results / "gpu" / "status-smoke.json").read_text())["runs"]}
    assert all(table[n] == "done" for n in names) and len(table) == len(plan(profiles.load("smoke")))


@pytest.mark.slow
def test_collect_fits_a_device_call_and_receive_restores_it(trained, tmp_path):
    prof, results, _ = trained
    out = tmp_path / "OUT"
    assert main(["gpu", "collect", "--out", str(out), "--results", str(results), "--name", "back"]) == 0
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) <= collect.FILES_LIMIT and sum(p.stat().st_size for p in files) <= collect.TOTAL_BYTES_LIMIT
    assert all(p.stat().st_size <= collect.FILE_BYTES_LIMIT and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in files)
    manifest = json.loads((out / "back.json").read_text())
    members = {m["path"]: m["kind"] for m in manifest["members"]}
    dense, tucker = (r.config.name for r in plan(prof))
    assert members[f"smoke/{dense}/record.json"] == "record" and members[f"smoke/{tucker}/record.json"] == "record"
    assert members[f"smoke/{dense}/weights.pt"] == "weights" and f"smoke/{tucker}/weights.pt" not in members
    assert any(k == "report" for k in members.values()) and not manifest["left_out"]
    here = tmp_path / "results"
    assert main(["gpu", "receive", str(out / "back.json"), "--results", str(here)]) == 0
    for rel in members:
        assert (here / rel).read_bytes() == (results / rel).read_bytes()
    (here / "smoke" / dense / "record.json").write_text("{}")  # a different record here is never overwritten
    assert main(["gpu", "receive", str(out / "back.json"), "--results", str(here)]) == 1
    assert (here / "smoke" / dense / "record.json").read_text() == "{}"


@pytest.mark.slow
def test_collect_leaves_out_records_the_tree_already_holds(trained, tmp_path):
    prof, results, _ = trained
    dense = plan(prof)[0].config.name
    tree = tmp_path / "tree"
    (tree / "smoke" / dense).mkdir(parents=True)
    shutil.copy(results / "smoke" / dense / "record.json", tree / "smoke" / dense / "record.json")
    kept = {i.rel for i in collect.gather(results, tree)}
    assert f"smoke/{dense}/record.json" not in kept and f"smoke/{plan(prof)[1].config.name}/record.json" in kept


def test_collect_splits_volumes_leaves_out_the_last_planned_checkpoint_and_receive_joins_them(tmp_path):
    import torch

    runs = plan(profiles.load("paper"))[:3]
    names = [r.config.name for r in runs]
    results = tmp_path / "dev"
    blobs = {}
    for run in reversed(runs):  # written in reverse: the order must come from the plan, not from the disk
        n = run.config.name
        (results / "paper" / n).mkdir(parents=True)
        weights = torch.frombuffer(bytearray(os.urandom(6 * MIB)), dtype=torch.uint8)  # incompressible
        saved = {"config_hash": run.config.hash, "epoch": 1, "model": {"w": weights}, "optimizer": {}, "scheduler": {}}
        torch.save({**saved, "history": [{"epoch": 1}], "wall_seconds": 1.0}, results / "paper" / n / "checkpoint.pt")
        blobs[n] = (results / "paper" / n / "checkpoint.pt").read_bytes()
    out = tmp_path / "OUT"
    manifest = collect.collect(results, out, name="ckpt", limit_bytes=14 * MIB, volume_bytes=5 * MIB)
    assert [m["path"] for m in manifest["members"]] == [f"paper/{n}/checkpoint.pt" for n in names[:2]]
    assert [m["path"] for m in manifest["left_out"]] == [f"paper/{names[2]}/checkpoint.pt"]
    assert len(manifest["volumes"]) == 3 and all(v["bytes"] <= 5 * MIB for v in manifest["volumes"])
    outcome = collect.receive(out / "ckpt.json", tmp_path / "here")
    assert sorted(outcome["written"]) == sorted(m["path"] for m in manifest["members"])
    assert (tmp_path / "here" / "paper" / names[0] / "checkpoint.pt").read_bytes() == blobs[names[0]]
    (out / "ckpt.tgz.001").write_bytes(b"broken")
    with pytest.raises(collect.CollectError, match="ckpt.tgz.001 is corrupted"):
        collect.receive(out / "ckpt.json", tmp_path / "again")


def test_collect_refuses_a_full_out_folder(tmp_path):
    out = tmp_path / "OUT"
    out.mkdir()
    for i in range(collect.FILES_LIMIT - 1):
        (out / f"log{i}").write_text("x")
    (tmp_path / "dev").mkdir()
    with pytest.raises(collect.CollectError, match="no room"):
        collect.collect(tmp_path / "dev", out)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["gpu", "batch", "--minutes", "5"], "invalid choice: 'batch'"),  # training there is `elrt batch`
        (["gpu", "unpack", "--profile", "gpu"], "invalid choice: 'gpu'"),
        (["gpu", "unpack", "--pack", "/nonexistent"], "no pack manifest at /nonexistent/manifest.json"),
        (["gpu", "receive", "/nonexistent.json"], "no collect manifest"),
        (["gpu", "collect", "--out", "/tmp/x", "--results", "/nonexistent"], "is not a folder"),
        (["gpu", "pack", "--out", "notebooks/pack"], "is not git-ignored"),
        (["gpu", "pack", "--group-mib", "-1"], "--group-mib: must be > 0"),
        (["gpu", "pack", "--minutes", "9"], "leaves no room in a 600 s device call; at most 8"),
        (["gpu", "bench", "--models", "resnet21"], "invalid choice: 'resnet21'"),
        (["gpu", "frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_gpu_arguments_one_line_exit_2(argv, needle, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("elrt: error: ") and needle in err


def test_collect_name_must_be_a_plain_file_name(tmp_path, capsys):
    assert main(["gpu", "collect", "--out", str(tmp_path / "o"), "--results", str(tmp_path), "--name", "a/b"]) == 2
    assert "may hold only letters" in capsys.readouterr().err
