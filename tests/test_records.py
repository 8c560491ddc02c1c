"""Run records: atomic writes, lookup by config hash, stale and broken records reported."""

import json
import os

import pytest

from elrt_core import records
from elrt_core.config import TrainConfig


def _record(config, status="finished"):
    return {"schema_version": records.SCHEMA_VERSION, "status": status, "config_hash": config.hash,
            "config": config.to_dict(), "metrics": {"final_test_top1": 50.0, "history": []}, "cost": {}, "provenance": {}}


def test_write_json_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run" / "record.json"
    records.write_json(path, {"a": 1})

    def fail_dump(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(records.json, "dump", fail_dump)
    with pytest.raises(RuntimeError):
        records.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}  # the old record is intact
    assert os.listdir(path.parent) == ["record.json"]  # no temporary file left behind


def test_find_by_config_hash(tmp_path):
    a, b = TrainConfig(epochs=3), TrainConfig(epochs=4)
    records.write_json(tmp_path / "a" / "record.json", _record(a))
    records.write_json(tmp_path / "b" / "record.json", _record(b, status="running"))
    assert records.find(a, tmp_path).path == tmp_path / "a"
    assert records.find(b, tmp_path) is None  # unfinished runs are not reused
    assert records.find(TrainConfig(epochs=5), tmp_path) is None


def test_unparseable_and_stale_records_are_reported_not_used(tmp_path):
    a = TrainConfig(epochs=3)
    broken = _record(a)
    broken["config"]["optimizer"] = "adam"  # a key this version does not know
    records.write_json(tmp_path / "old" / "record.json", broken)
    stale = _record(a)
    stale["config_hash"] = "0" * 16
    records.write_json(tmp_path / "stale" / "record.json", stale)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "record.json").write_text("{not json")
    good, bad = records.scan(tmp_path)
    assert good == [] and len(bad) == 3
    text = " ".join(map(str, bad))
    assert "no longer parses" in text and "stale" in text and "unreadable" in text
    with pytest.warns(UserWarning, match="no longer parses"):
        assert records.find(a, tmp_path) is None


def test_git_state_of_this_checkout():
    state = records.git_state()
    assert state["commit"] is None or len(state["commit"]) == 40
    assert state["dirty"] in (True, False, None)



def test_cpu_records_name_the_processor_model(tmp_path):
    import torch

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9999 64-Core Processor\n")
    assert records.cpu_name(info) == "AMD EPYC 9999 64-Core Processor"
    assert records.cpu_name(tmp_path / "missing") not in ("", None)
    prov = records.provenance(torch.device("cpu"), seed=0, profile="smoke", started=0.0, ended=1.0)
    assert prov["device_name"] == records.cpu_name()
