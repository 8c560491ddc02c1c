"""Figure 3's error tables are computed once per network, spec and analysis code, then read back."""

import ast
import importlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from elrt_core import analysis
from elrt_core.profiles import Approximation
from elrt_core.study import Session, approximation, plan
from elrt_core.study.approximation import approximation_errors, code_fingerprint, errors_key, networks

SPEC = Approximation(model="small", ratios=(2.0,), formats=("tucker2", "matrix"), curve_ratios=(3.0,))


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 10, 3, padding=1)
    )


def test_the_table_is_stored_with_provenance_and_read_back_unchanged(tmp_path, monkeypatch):
    first = approximation_errors(_net(), SPEC, "trained", tmp_path)
    assert set(first["budget"]) == {2.0, 3.0} and set(first["by"]) == {"macs", "params"}
    assert (first["weights"] == "trained").all()
    (csv,) = tmp_path.glob("trained-*.csv")
    sidecar = json.loads(csv.with_suffix(".json").read_text())
    assert sidecar["table"] == csv.name and sidecar["spec"]["formats"] == ["tucker2", "matrix"]
    assert "commit" in sidecar["provenance"] and sidecar["provenance"]["wall_seconds"] >= 0

    def no_compute(*args, **kwargs):
        raise AssertionError("the stored table should have been read")

    monkeypatch.setattr(analysis, "layer_errors", no_compute)
    again = approximation_errors(_net(), SPEC, "trained", tmp_path)
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    with pytest.raises(AssertionError, match="stored table"):
        approximation_errors(_net(), SPEC, "trained")  # no cache folder: always computed


@pytest.mark.parametrize(
    "change",
    [
        lambda net, spec: (_net(seed=1), spec),
        lambda net, spec: (net, Approximation("small", (2.0,), ("tucker2", "matrix"), (3.0, 4.0))),
        lambda net, spec: (net, Approximation("small", (2.0,), ("tucker2",), (3.0,))),
    ],
    ids=["weights", "budgets", "formats"],
)
def test_the_key_changes_with_what_the_table_depends_on(change):
    net = _net()
    assert errors_key(net, SPEC) == errors_key(_net(), SPEC)
    assert errors_key(*change(net, SPEC)) != errors_key(net, SPEC)


@pytest.mark.parametrize(
    "module",
    [
        "elrt_core.analysis",
        "elrt_core.cost",
        "elrt_core.lowrank.convert",
        "elrt_core.lowrank.layers",
        "elrt_core.lowrank.tucker",
        "_budgets",
        "approximation_errors",
    ],
)
def test_the_key_changes_with_the_code_the_table_depends_on(module, monkeypatch):
    before = errors_key(_net(), SPEC)
    real = approximation.inspect.getsource
    monkeypatch.setattr(approximation.inspect, "getsource", lambda m: "edited" if m.__name__ == module else real(m))
    assert errors_key(_net(), SPEC) != before


_SOURCES = {
    "documented": '''"""A module."""\n\nSCALE = 1\n"""The scale."""\n\n\ndef add(x):\n    """Add one."""\n    return x + SCALE  # the comment\n''',
    "bare": "SCALE = 1\ndef add(x):\n    # another comment\n    return (x +\n            SCALE)\n",
    "other": '''"""A module."""\n\nSCALE = 1\n"""The scale."""\n\n\ndef add(x):\n    """Add one."""\n    return x - SCALE  # the comment\n''',
}


def test_the_code_fingerprint_ignores_docstrings_comments_and_layout_but_not_code(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    prints = {}
    for name, source in _SOURCES.items():
        (tmp_path / f"fingerprint_{name}.py").write_text(source)
        module = importlib.import_module(f"fingerprint_{name}")
        prints[name] = code_fingerprint(module), code_fingerprint(module.add)
    assert prints["documented"] == prints["bare"]
    assert prints["documented"][0] != prints["other"][0] and prints["documented"][1] != prints["other"][1]


def test_the_code_fingerprint_ignores_fields_a_python_release_adds_empty():
    tree = ast.parse("def add(x):\n    return x + 1\n")
    before = approximation._canonical(tree)
    tree.body[0].type_params = []  # Python 3.12 adds this field to every function
    tree.body[0]._fields = (*tree.body[0]._fields, "type_params")
    assert approximation._canonical(tree) == before
    tree.body[0].body[0].value.right.value = 2
    assert approximation._canonical(tree) != before


def test_the_key_changes_with_a_conv_layer_s_geometry():
    net, strided = _net(), _net()
    strided[1].stride = (2, 2)  # same kernel, another layer
    assert errors_key(strided, SPEC) != errors_key(net, SPEC)


def test_a_table_without_its_provenance_is_computed_again(tmp_path):
    approximation_errors(_net(), SPEC, "trained", tmp_path)
    (sidecar,) = tmp_path.glob("trained-*.json")
    sidecar.unlink()
    approximation_errors(_net(), SPEC, "trained", tmp_path)
    assert sidecar.exists() and not list(tmp_path.glob(".*.tmp"))


RESULTS = Path(__file__).resolve().parents[1] / "results"
STORED = sorted(folder.parent.name for folder in RESULTS.glob("*/approximation") if any(folder.glob("*.csv")))


def test_the_default_profile_s_tables_are_committed():
    assert "cpu-full" in STORED


@pytest.mark.parametrize("profile", STORED)
def test_the_committed_tables_are_those_of_the_current_code(profile):
    s = Session(profile, str(RESULTS), train_missing=False, notebook="01_approximation_error")
    spec = s.profile.approximation
    ((_, record),) = s.runs([plan.approximation_run(s.profile)])
    rng = torch.random.get_rng_state()
    nets = networks(record, spec)
    assert torch.equal(torch.random.get_rng_state(), rng)  # building the control leaves the caller's random state
    stored = {path.name for path in s.approximation_dir.glob("*.csv")}
    expected = set()
    for weights, net in nets.items():  # keyed with the versions each table was computed with: the code is what is checked
        sidecars = [json.loads(p.read_text()) for p in s.approximation_dir.glob(f"{weights}-*.json")]
        assert len(sidecars) == 1, f"results/{profile}/approximation: one {weights} table expected"
        expected.add(f"{weights}-{errors_key(net, spec, sidecars[0]['provenance']['versions'])}.csv")
    assert stored == expected, (
        f"results/{profile}/approximation holds {sorted(stored)}, the current code reads {sorted(expected)}: "
        f"chapter 1 would recompute them (~25 min). Run `elrt reproduce --profile {profile} --only "
        "01_approximation_error`, then commit the new tables and their sidecars and remove the old ones."
    )
