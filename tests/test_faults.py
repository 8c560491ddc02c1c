"""Fault injection: one test per defect of the 128-probe fault run (issue 29), each failing on the code
before the fix. Nothing is lost, nothing is run from a file, nothing is silently wrong, and every
failure is one line with its documented exit status.

Defect 10 (SIGTERM/SIGHUP to ``elrt batch``) belongs to the scheduler's rewrite and is tested there.
The probes are unit-sized: the few that train use a synthetic data set of 300 images (``tiny_data``).
"""

import errno
import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import nbformat
import pytest
import torch
from tiny_runs import terminal_signals

from elrt_core import cli, profiles, records
from elrt_core.cli import main
from elrt_core.config import ConfigError, TrainConfig
from elrt_core.gpu import collect, pack
from elrt_core.study import plan, reproduce, status
from elrt_core.study.runs import run_dir
from elrt_core.train import checkpoint, run_folder

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--epochs", "2", "--batch-size", "50", "--quiet", "--threads", "1"]
"""An `elrt train` of a dense ResNet-20 for 2 epochs; its config is :data:`TRAIN_CONFIG`."""
TRAIN_CONFIG = TrainConfig(epochs=2, batch_size=50)


@pytest.fixture
def tiny_data(monkeypatch):
    """CIFAR-10 stand-in for the runs of a test: 200 training and 100 test images, 10 classes, checked at once."""
    from elrt_core import data
    from elrt_core.data.layouts import DataSet

    x = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(300) % 10
    ds = DataSet(x[:200], y[:200], x[200:], y[200:], tuple("0123456789"), (0.5,) * 3, (0.25,) * 3, "synthetic (test)")
    monkeypatch.setattr(data, "load", lambda *args, **kwargs: ds)
    monkeypatch.setattr(data, "check", lambda *args, **kwargs: "synthetic (test)")


def _checkpoint(config: TrainConfig, epoch: int, **changes) -> dict:
    """A checkpoint of the shape the training loop writes, at ``epoch`` of ``config``."""
    saved = {"config_hash": config.hash, "epoch": epoch, "model": {}, "optimizer": {}, "scheduler": {}}
    return {**saved, "history": [{"epoch": e} for e in range(1, epoch + 1)], "wall_seconds": 1.0, **changes}


def _record(config: TrainConfig, rows: int, acc: float = 50.0) -> dict:
    return records.build(
        config,
        status="finished",
        history=[{"epoch": e, "train_loss": 1.0, "test_top1": acc} for e in range(1, rows + 1)],
        sizes={"train_images": 1, "val_images": 0, "test_images": 1},
        cost={},
        provenance={},
    )


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _collected(dev: Path, out: Path) -> Path:
    """The manifest of ``elrt gpu collect`` of the device results ``dev`` into ``out``."""
    collect.collect(dev, out, name="back")
    return out / "back.json"


# ---- 1, 2: data loss --------------------------------------------------------------------------------
def test_1_receive_never_replaces_a_newer_or_locked_run_nor_a_local_log(tmp_path):
    config = TrainConfig(epochs=9)
    dev, here = tmp_path / "dev" / "smoke", tmp_path / "here" / "smoke"
    for run, device_epoch, local_epoch in (("ahead", 1, 3), ("locked", 5, 2), ("behind", 4, 2)):
        for folder, epoch, log in ((dev / run, device_epoch, b"device lines\n"), (here / run, local_epoch, b"local lines\n")):
            folder.mkdir(parents=True)
            torch.save(_checkpoint(config, epoch), folder / "checkpoint.pt")
            (folder / "train.log").write_bytes(log)
    manifest = _collected(tmp_path / "dev", tmp_path / "OUT")
    with open(here / "locked" / run_folder.LOCK_FILE, "w") as held:  # an `elrt train` is training there
        fcntl.flock(held, fcntl.LOCK_EX)
        outcome = collect.receive(manifest, tmp_path / "here")
    epoch = {run: checkpoint.load(here / run / "checkpoint.pt")["epoch"] for run in ("ahead", "locked", "behind")}
    assert epoch == {"ahead": 3, "locked": 2, "behind": 4}  # only the run that was behind moves on
    assert "smoke/ahead/checkpoint.pt" in outcome["kept"] and "smoke/locked/checkpoint.pt" in outcome["busy"]
    log = (here / "ahead" / "train.log").read_text()
    assert log.startswith("local lines\n") and log.endswith("device lines\n")  # appended, nothing lost
    assert (here / "locked" / "train.log").read_text() == "local lines\n"
    again = collect.receive(manifest, tmp_path / "here")
    assert "smoke/ahead/train.log" in again["same"] and (here / "ahead" / "train.log").read_text() == log


def test_2_pack_removes_only_the_pieces_it_wrote(tmp_path, monkeypatch):
    out = tmp_path / "pack"  # outside the repository: --out DIR
    mine = {out / "g1" / "notes.txt": "mine", out / "g7" / "thesis.tex": "mine too"}
    for path, text in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    labels = pack._Piece("labels.u8", b"1" * 10, {"kind": "labels", "train": 5, "test": 5})
    images = pack._Piece("images-00.webp", b"2" * 10, {"kind": "images", "split": "train", "start": 0, "count": 5})
    pieces = [labels, images]
    monkeypatch.setattr(pack, "_reusable", lambda old, where: list(pieces))  # no CIFAR-10 to encode
    first = pack.pack(REPO, pack_dir=out, limit=15, log=lambda line: None)
    assert [(e["group"], e["name"]) for e in first["pieces"]] == [("g1", "labels.u8"), ("g2", "images-00.webp")]
    pieces = [labels]  # the next pack has no image piece: the earlier one goes, with its emptied folder
    pack.pack(REPO, pack_dir=out, limit=100, log=lambda line: None)
    assert not (out / "g2").exists() and (out / "g1" / "labels.u8").exists()
    assert all(path.read_text() == text for path, text in mine.items())


# ---- 3, 4, 5: silently wrong ------------------------------------------------------------------------
@pytest.mark.parametrize("field,text", [("nesterov", "false"), ("reg_per_rank", "no")])
def test_3_a_yaml_string_is_no_boolean(field, text, tmp_path, capsys):
    with pytest.raises(ConfigError, match=f"{field} must be true or false, got '{text}'"):
        TrainConfig.from_dict({"format": "tucker2", "flops_ratio": 2.0, field: text})
    config = tmp_path / "config.yaml"
    config.write_text(f"{field}: '{text}'\n")
    argv = ["train", "--config", str(config), "--format", "tucker2", "--flops-ratio", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert f"{field} must be true or false" in _one_line(capsys.readouterr().err) and not (tmp_path / "run").exists()


def test_4_resume_refuses_a_checkpoint_past_its_epochs_and_records_hold_consistent_numbers(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save(_checkpoint(TrainConfig(epochs=3), 7), out / "checkpoint.pt")
    with pytest.raises(run_folder.RunFolderError, match="says epoch 7; a checkpoint of this run holds 1 to the config's 3"):
        run_folder.check(out, TrainConfig(epochs=3), resume=True, force=False)
    config = TrainConfig(epochs=2)
    for name, data in (("huge", _record(config, 2, acc=1e9)), ("short", _record(config, 1))):
        records.write_json(tmp_path / name / "record.json", data)
    with pytest.raises(records.InvalidRecord, match=r"test_top1' must be a percentage in \[0, 100\], got 1000000000.0"):
        records.read(tmp_path / "huge")
    with pytest.raises(records.InvalidRecord, match="a finished run of 2 epochs with 1 history rows"):
        records.read(tmp_path / "short")
    records.write_json(tmp_path / "good" / "record.json", _record(config, 2))
    assert records.read(tmp_path / "good").finished


def test_5_an_interrupted_chapter_is_never_published(tmp_path, monkeypatch):
    import papermill

    out = tmp_path / "generated"
    out.mkdir()
    chapter = out / "02_orthogonality_on_off.ipynb"
    previous = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("the previous build")]))
    chapter.write_text(previous)

    def interrupted(source, output, **kwargs):
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("half")]), output)
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reproduce.execute_notebook(chapter.stem, {}, out)
    assert chapter.read_text() == previous and sorted(p.name for p in out.iterdir()) == [chapter.name]
    monkeypatch.setattr(
        papermill, "execute_notebook", lambda source, output, **kw: nbformat.write(nbformat.v4.new_notebook(), output)
    )
    assert reproduce.is_complete(reproduce.execute_notebook("04_main_results", {}, out))
    reproduce.remove_old_chapters(out, incomplete_only=True)  # a chapter without the mark (older code's) goes
    assert sorted(p.name for p in out.iterdir()) == ["04_main_results.ipynb"]


# ---- 6, 7, 8, 9: security ---------------------------------------------------------------------------
class _Payload:
    """Pickles as a call of ``os.mkdir(marker)``: what a hostile checkpoint would run when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_6_a_checkpoint_carrying_code_never_runs_it(tmp_path):
    config = plan.plan(profiles.load("smoke"))[0].config
    marker = tmp_path / "the-payload-ran"
    folder = tmp_path / "results" / "smoke" / config.name
    folder.mkdir(parents=True)
    torch.save(_checkpoint(config, 1, model={"x": _Payload(marker)}), folder / "checkpoint.pt")
    with pytest.raises(run_folder.RunFolderError, match="not a PyTorch file of tensors and plain data"):
        run_folder.check(folder, config, resume=True, force=False)  # elrt train --resume
    planned = plan.plan(profiles.load("smoke"))[0]
    assert status.run_status(planned, tmp_path / "results" / "smoke").epoch is None  # elrt status, on any machine
    with pytest.raises(collect.CollectError, match="not a PyTorch file"):
        collect.receive(_collected(tmp_path / "results", tmp_path / "OUT"), tmp_path / "here")
    assert not marker.exists() and not (tmp_path / "here").exists()


def test_7_unpack_writes_no_member_outside_its_results_folder(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../checkpoint.pt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"owned"))
    results = tmp_path / "a" / "b" / "results"
    manifest = {"pieces": [{"name": "resume.tar.000", "kind": "resume"}]}
    with pytest.raises(ValueError, match=r"unexpected member '\.\./\.\./checkpoint\.pt'"):
        pack._extract_checkpoints({"resume.tar.000": buf.getvalue()}, manifest, results)
    assert not list(tmp_path.rglob("checkpoint.pt"))


def test_8_receive_bounds_what_an_archive_expands_to(tmp_path, monkeypatch):
    (tmp_path / "dev" / "smoke" / "run").mkdir(parents=True)
    (tmp_path / "dev" / "smoke" / "run" / "train.log").write_bytes(b"\0" * (2 << 20))  # compresses to a few KiB
    manifest = _collected(tmp_path / "dev", tmp_path / "OUT")
    monkeypatch.setattr(collect, "UNPACKED_LIMIT", 1 << 20, raising=False)
    with pytest.raises(ValueError, match="expands to more than 1 MiB"):
        collect.receive(manifest, tmp_path / "here")
    assert not (tmp_path / "here").exists()


def test_9_receive_writes_no_record_that_fails_the_schema(tmp_path):
    records.write_json(tmp_path / "dev" / "smoke" / "good" / "record.json", _record(TrainConfig(epochs=1), 1))
    records.write_json(tmp_path / "dev" / "smoke" / "bad" / "record.json", {"status": "finished"})
    with pytest.raises(collect.CollectError, match="smoke/bad/record.json: missing key 'schema_version'"):
        collect.receive(_collected(tmp_path / "dev", tmp_path / "OUT"), tmp_path / "here")
    assert not (tmp_path / "here").exists()


# ---- 11 to 14: crashes and tracebacks ---------------------------------------------------------------
def test_11_disk_full_while_writing_a_checkpoint_is_one_line(tmp_path, tiny_data, monkeypatch, capsys):
    def disk_full(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write() reports it: no file named

    monkeypatch.setattr(torch, "save", disk_full)
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == cli.EXIT_OS_ERROR
    err = _one_line(capsys.readouterr().err)
    assert f"No space left on device: {out / 'checkpoint.pt'}; free some space" in err
    assert not list(tmp_path.rglob("*checkpoint*"))  # no half-written file


def test_11_file_system_refusals_are_one_line_with_their_exit_status(tmp_path, tiny_data, monkeypatch, capsys):
    (tmp_path / "lock" / run_folder.LOCK_FILE).mkdir(parents=True)  # a .lock that is a folder
    assert main([*TRAIN, "--out", str(tmp_path / "lock")]) == cli.EXIT_OS_ERROR
    assert "Is a directory" in _one_line(capsys.readouterr().err)
    first = plan.plan(profiles.load("smoke"))[0]
    folder = run_dir(first.config, "smoke", tmp_path / "results")  # a run folder that is a file
    folder.parent.mkdir(parents=True)
    folder.write_text("keep")
    assert main(["batch", "--profile", "smoke", "--results", str(tmp_path / "results")]) == cli.EXIT_OS_ERROR
    assert "a file stands where a folder belongs" in _one_line(capsys.readouterr().err) and folder.read_text() == "keep"
    denied = tmp_path / "results" / "smoke"

    def permission_denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(denied))

    monkeypatch.setattr(records, "lookup", permission_denied)
    assert main(["plan", "--profile", "smoke", "--results", str(tmp_path / "results")]) == cli.EXIT_OS_ERROR
    assert f"Permission denied: {denied}; give this user access" in _one_line(capsys.readouterr().err)


def _gzip_volume_that_is_not_gzip(folder: Path) -> list[dict]:
    """A volume entry whose checksum matches a file that is no gzip archive."""
    import hashlib

    data = b"plain bytes, not gzip"
    (folder / "x.tgz.000").write_bytes(data)
    return [{"file": "x.tgz.000", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}]


_COLLECTED = {"format": collect.FORMAT, "members": []}


@pytest.mark.parametrize(
    "command,manifest,needle",
    [
        ("receive", lambda d: [], "is not a manifest written by `elrt gpu collect`"),
        ("receive", lambda d: {**_COLLECTED, "volumes": "x.tgz.000"}, "has no list of 'volumes'"),
        ("receive", lambda d: {**_COLLECTED, "volumes": _gzip_volume_that_is_not_gzip(d)}, "not a readable gzip-compressed tar"),
        ("unpack", lambda d: [1], "no pack manifest"),
        ("unpack", lambda d: {"format": pack.FORMAT, "version": 1, "pieces": "x", "groups": []}, "has no list of 'pieces'"),
    ],
)
def test_12_malformed_manifests_are_one_line_errors(command, manifest, needle, tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest(tmp_path)))
    if command == "receive":
        argv = ["gpu", "receive", str(tmp_path / "manifest.json"), "--results", str(tmp_path / "here")]
    else:
        argv = ["gpu", "unpack", "--pack", str(tmp_path), "--data-out", str(tmp_path / "d"), "--results", str(tmp_path / "here")]
    assert main(argv) == 2
    assert needle in _one_line(capsys.readouterr().err) and not (tmp_path / "here").exists()


def test_13_a_checkpoint_that_does_not_fit_the_model_is_one_line(tmp_path, tiny_data, capsys):
    out = tmp_path / "run"
    out.mkdir()
    torch.save(_checkpoint(TRAIN_CONFIG, 1, model={"conv1.weight": torch.zeros(1)}), out / "checkpoint.pt")
    assert main([*TRAIN, "--out", str(out), "--resume"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"{out / 'checkpoint.pt'} does not fit the model and optimizer of this config" in err and "--force" in err


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kwargs.setdefault("preexec_fn", terminal_signals)
    return subprocess.Popen([sys.executable, "-m", "elrt_core.cli", *args], env=env, stderr=subprocess.PIPE, **kwargs)


@pytest.mark.slow
def test_14_a_reader_that_goes_away_ends_the_output_quietly(tmp_path):
    read, write = os.pipe()
    os.close(read)  # `elrt plan | head` after head has exited
    proc = _cli("plan", "--profile", "smoke", "--results", str(tmp_path), stdout=write)
    os.close(write)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == cli.EXIT_BROKEN_PIPE and err == b""


@pytest.mark.parametrize("loading", ["libtorch", "_multiarray_umath", "scipy", "PIL"])
def test_14_ctrl_c_while_the_command_still_imports_is_exit_130_in_one_line(loading, tmp_path):
    """Ctrl-C as soon as the shared library ``loading`` is mapped: PyTorch, NumPy, SciPy (the parsers
    import it) and Pillow. Without :func:`elrt_core.cli.exits.ctrl_c_ends_at_once` a KeyboardInterrupt
    inside NumPy, SciPy or Pillow ended the command with a traceback, exit status 0 or -2."""
    proc = _cli("plan", "--profile", "smoke", "--results", str(tmp_path), stdout=subprocess.DEVNULL)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.time() + 120
    while loading not in maps.read_text():
        assert time.time() < deadline and proc.poll() is None, f"{loading} was never loaded"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and err.decode() == "elrt: interrupted\n"


def test_14_ctrl_c_raises_keyboardinterrupt_again_once_the_command_has_parsed_its_arguments(tmp_path):
    """The at-once ending covers the imports and the parsing only: the handler before is back for the
    command's work (a training run saves its checkpoint on KeyboardInterrupt)."""
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["plan", "--profile", "smoke", "--results", str(tmp_path)]) == 0
    assert signal.getsignal(signal.SIGINT) is before


def test_14_a_command_that_ignores_ctrl_c_keeps_ignoring_it_while_it_imports(tmp_path):
    """A command started in the background by a script ignores SIGINT; the at-once ending must not undo that."""
    proc = _cli("plan", "--profile", "smoke", "--results", str(tmp_path), stdout=subprocess.DEVNULL, preexec_fn=_ignore_sigint)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.time() + 120
    while "libtorch" not in maps.read_text():
        assert time.time() < deadline and proc.poll() is None, "libtorch was never loaded"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and err == b""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ---- 15, 16: cryptic errors and misleading output ---------------------------------------------------
def _receive(folder: Path, manifest: dict) -> list[str]:
    (folder / "back.json").write_text(json.dumps(manifest))
    return ["gpu", "receive", str(folder / "back.json"), "--results", str(folder / "here")]


def _resume_without_model(folder: Path) -> list[str]:
    (folder / "run").mkdir()
    saved = _checkpoint(TRAIN_CONFIG, 1)
    del saved["model"]
    torch.save(saved, folder / "run" / "checkpoint.pt")
    return [*TRAIN, "--out", str(folder / "run"), "--resume"]


@pytest.mark.parametrize(
    "command,needle",
    [
        (lambda d: _receive(d, _COLLECTED), "has no list of 'volumes' and 'members'"),
        (
            lambda d: _receive(d, {**_COLLECTED, "volumes": [{"file": "x.tgz.000", "bytes": 1}]}),
            "entry 0 needs a volume 'file' name, its 'bytes' and its 'sha256'",
        ),
        (_resume_without_model, "checkpoint.pt is not a complete checkpoint: it has no 'model'"),
        (
            lambda d: [*TRAIN, "--out", str(d / "run"), "--seed", "99999999999999999999"],
            "seed must be in [0, 4294967295], got 99999999999999999999",
        ),
    ],
    ids=["no volumes", "no sha256", "no model", "huge seed"],
)
def test_15_errors_name_what_is_wrong(command, needle, tmp_path, capsys):
    assert main(command(tmp_path)) == 2
    assert needle in _one_line(capsys.readouterr().err)


def test_16_an_unusable_record_is_a_one_line_warning_and_labelled_so(tmp_path, capsys):
    first = plan.plan(profiles.load("smoke"))[0]
    folder = run_dir(first.config, "smoke", tmp_path)
    folder.mkdir(parents=True)
    (folder / "record.json").write_text("{not json")
    torch.save(_checkpoint(first.config, 1), folder / "checkpoint.pt")
    assert main(["plan", "--profile", "smoke", "--results", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    line = next(x for x in out.splitlines() if first.config.name in x)
    assert line.endswith("unusable record") and "1 unusable record" in out
    assert err.startswith("elrt: warning: ") and f"{folder / 'record.json'}: unreadable" in err
    assert all(x.startswith("elrt: warning: ") for x in err.splitlines()) and "warn(" not in err


def test_16_a_stale_record_is_refused_not_reused(tmp_path):
    config = TrainConfig(epochs=1)
    data = _record(config, 1)
    data["config"]["lr"] = 0.05  # edited by hand: the record no longer holds the config its hash names
    records.write_json(tmp_path / "run" / "record.json", data)
    with pytest.warns(UserWarning, match="stale"):  # what `elrt batch` sees: no usable record, so it trains
        assert records.lookup(config, tmp_path) is None
    with pytest.raises(run_folder.RunFolderError, match="stale"):  # and `elrt train` says why instead of reusing it
        run_folder.check(tmp_path / "run", config, resume=True, force=False)
