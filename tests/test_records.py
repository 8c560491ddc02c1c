"""Run records: atomic strict writes, schema validation naming the file, lookup by config hash,
stale, broken and duplicate records reported, never silently used."""

import json
import os
import stat
import subprocess

import pytest

from elrt_core import atomic, records
from elrt_core.config import TrainConfig
from elrt_core.paths import RESULTS_FOLDER


def _record(config, status="finished", acc=50.0):
    epochs = config.epochs if status == "finished" else 1  # a finished run has every epoch, a diverged one fewer
    return records.build(
        config,
        status=status,
        history=[{"epoch": e, "train_loss": 1.0, "test_top1": acc} for e in range(1, epochs + 1)],
        sizes={"train_images": 1, "val_images": 0, "test_images": 1},
        cost={},
        provenance={},
        divergence={"epoch": 1, "step": 3, "reason": "loss became nan"} if status == "diverged" else None,
    )


def test_write_json_is_atomic_strict_and_readable_by_others(tmp_path, monkeypatch):
    path = tmp_path / "run" / "record.json"
    records.write_json(path, {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    with pytest.raises(ValueError):  # NaN is not JSON
        records.write_json(path, {"a": float("nan")})

    def fail_rename(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(atomic.os, "replace", fail_rename)  # the new record is written, the rename fails
    with pytest.raises(RuntimeError):
        records.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}  # the old record is intact
    assert os.listdir(path.parent) == ["record.json"]  # no temporary file left behind


def test_build_replaces_non_finite_values_and_keeps_validation_metrics():
    history = [
        {"epoch": 1, "train_loss": float("inf"), "val_top1": 40.0, "test_top1": 41.0},
        {"epoch": 2, "train_loss": 1.0, "val_top1": 45.0, "test_top1": 44.0},
    ]
    rec = records.build(
        TrainConfig(epochs=2),
        status="finished",
        history=history,
        sizes={"train_images": 9, "val_images": 1, "test_images": 1},
        cost={},
        provenance={},
    )
    assert rec["metrics"]["history"][0]["train_loss"] is None
    assert (rec["metrics"]["final_val_top1"], rec["metrics"]["best_val_epoch"], rec["metrics"]["final_test_top1"]) == (
        45.0,
        2,
        44.0,
    )
    json.dumps(rec, allow_nan=False)


def test_a_record_holds_no_accuracy_chosen_by_the_test_set():
    rec = records.build(
        TrainConfig(epochs=2),
        status="finished",
        history=[{"epoch": 1, "train_loss": 1.0, "test_top1": 60.0}, {"epoch": 2, "train_loss": 0.9, "test_top1": 55.0}],
        sizes={"train_images": 1, "val_images": 0, "test_images": 1},
        cost={},
        provenance={},
    )
    assert rec["metrics"]["final_test_top1"] == 55.0  # the last epoch, not the best one
    assert not [key for key in rec["metrics"] if "test" in key and key != "final_test_top1" and key != "test_images"]


def test_find_by_config_hash_and_diverged_runs(tmp_path):
    a, b = TrainConfig(epochs=3), TrainConfig(epochs=4)
    records.write_json(tmp_path / "a" / "record.json", _record(a))
    records.write_json(tmp_path / "b" / "record.json", _record(b, status="diverged"))
    assert records.find(a, tmp_path).path == tmp_path / "a"
    assert records.find(b, tmp_path) is None  # a diverged run is never a result
    assert records.lookup(b, tmp_path).status == "diverged"
    assert records.find(TrainConfig(epochs=5), tmp_path) is None


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d.pop("metrics"), "missing key 'metrics'"),
        (lambda d: d.update(metrics=[1, 2]), "'metrics' must be dict, got list"),
        (lambda d: d.update(status="running"), "status 'running' is not one of"),
        (lambda d: d["metrics"].update(history={}), "'metrics.history' must be a list"),
        (lambda d: d["metrics"].pop("final_test_top1"), "a finished record needs a finite number"),
        (lambda d: d.update(schema_version=9), "schema_version 9"),
    ],
)
def test_a_malformed_record_is_a_named_error(tmp_path, mutate, needle):
    data = _record(TrainConfig(epochs=3))
    mutate(data)
    records.write_json(tmp_path / "run" / "record.json", data)
    with pytest.raises(records.InvalidRecord, match=needle) as err:
        records.read(tmp_path / "run")
    assert str(tmp_path / "run" / "record.json") in str(err.value)


def test_a_json_list_or_junk_names_the_file_and_does_not_break_other_lookups(tmp_path):
    a = TrainConfig(epochs=3)
    records.write_json(tmp_path / "good" / "record.json", _record(a))
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "record.json").write_text("[1, 2]")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "record.json").write_text("{not json")
    with pytest.warns(UserWarning) as warned:
        assert records.find(a, tmp_path).path == tmp_path / "good"
    messages = sorted(str(w.message) for w in warned)
    assert len(messages) == 2
    assert "junk/record.json: unreadable" in messages[0] and "list/record.json: a record must be a JSON object" in messages[1]


def test_stale_and_unknown_config_keys_are_reported(tmp_path):
    a = TrainConfig(epochs=3)
    broken = _record(a)
    broken["config"]["optimizer"] = "adam"
    records.write_json(tmp_path / "old" / "record.json", broken)
    stale = _record(a)
    stale["config_hash"] = "0" * 16
    records.write_json(tmp_path / "stale" / "record.json", stale)
    good, bad = records.scan(tmp_path)
    assert good == [] and len(bad) == 2
    text = " ".join(map(str, bad))
    assert "no longer parses" in text and "stale" in text


def test_duplicates_with_different_results_are_an_error_naming_both_folders(tmp_path):
    a = TrainConfig(epochs=3)
    records.write_json(tmp_path / "x" / "run" / "record.json", _record(a, acc=68.77))
    records.write_json(tmp_path / "y" / "run" / "record.json", _record(a, acc=68.77))
    assert records.find(a, tmp_path).metrics["final_test_top1"] == 68.77  # identical copies count once
    records.write_json(tmp_path / "z" / "run" / "record.json", _record(a, acc=49.81))
    with pytest.raises(records.DuplicateRecords) as err:
        records.find(a, tmp_path)
    assert str(tmp_path / "x" / "run") in str(err.value) and str(tmp_path / "z" / "run") in str(err.value)


def test_schema_1_records_still_read():
    data = _record(TrainConfig(epochs=3))
    data["schema_version"] = 1
    records.validate(data)


def test_git_state_of_this_checkout():
    state = records.git_state()
    assert len(state["commit"]) == 40 and all(ch in "0123456789abcdef" for ch in state["commit"])
    assert isinstance(state["dirty"], bool)


def test_git_state_is_dirty_for_changed_code_but_not_for_a_new_record(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / RESULTS_FOLDER).mkdir()
    (tmp_path / RESULTS_FOLDER / "a.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    assert records.git_state(tmp_path)["dirty"] is False
    (tmp_path / RESULTS_FOLDER / "a.json").write_text('{"new": 1}\n')  # a record rewritten by a run
    assert records.git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert records.git_state(tmp_path)["dirty"] is True


def test_cpu_records_name_the_processor_model(tmp_path):
    import torch

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9999 64-Core Processor\n")
    assert records.cpu_name(info) == "AMD EPYC 9999 64-Core Processor"
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    assert records.cpu_name(info) == "AMD EPYC (avx2)"  # machines that hide the model differ by vector width
    assert records.cpu_name(tmp_path / "missing") not in ("", None)
    prov = records.provenance(torch.device("cpu"), seed=0, profile="smoke", started=0.0, ended=1.0)
    assert prov["device_name"] == records.cpu_name()


def test_train_minutes_read_the_training_time_else_the_whole_run_else_nothing():
    from pathlib import Path

    from elrt_core.config import TrainConfig
    from elrt_core.records import Record

    def minutes(prov):
        return Record(Path("."), TrainConfig(), {"provenance": prov}).train_minutes

    assert minutes({"train_wall_seconds": 600, "wall_seconds": 900}) == 10
    assert minutes({"wall_seconds": 900}) == 15 and minutes({}) is None
