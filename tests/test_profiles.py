"""Profiles and the study plan."""

import pytest
import torch

from elrt_core import profiles, records
from elrt_core.config import ConfigError
from elrt_core.regularizers import penalty
from elrt_core.study import Session, plan
from elrt_core.train import build_model


def test_all_profiles_load_and_describe_themselves():
    assert profiles.names() == ["smoke", "cpu", "paper"]
    for name in profiles.names():
        p = profiles.load(name)
        assert str(p.train["epochs"]) in p.label and "seed" in p.label and name in p.label
    assert "10,000-image training subset" in profiles.load("cpu").label
    with pytest.raises(ConfigError, match="unknown profile 'gpu'; allowed: smoke, cpu, paper"):
        profiles.load("gpu")


@pytest.mark.parametrize("reg", ["so", "dso", "mc", "srip"])
@pytest.mark.parametrize("on", [("U2",), ("U1", "U2")])
def test_reg_weights_follow_the_documented_rule(reg, on):
    """lambda * penalty at initialization of Tucker-2 ResNet-20 at 2x is about 1 (profiles.yaml)."""
    p = profiles.load("cpu")
    model = build_model(p.config(format="tucker2", flops_ratio=2, seed=0))
    with torch.no_grad():
        value = penalty(model, reg, p.reg_weight(reg, on), on, generator=torch.Generator().manual_seed(0)).item()
    assert 0.5 <= value <= 2.0, value


def _fake_record(root, run, acc):
    records.write_json(root / "cpu" / run.config.name / "record.json", {
        "schema_version": 1, "status": "finished", "config_hash": run.config.hash, "config": run.config.to_dict(),
        "metrics": {"final_test_top1": acc, "history": []}, "cost": {}, "provenance": {}})


def test_captions_state_the_seed_count_of_the_runs_shown(tmp_path):
    p = profiles.load("cpu")
    s = Session("cpu", str(tmp_path), train_missing=False, notebook="02_orthogonality_on_off")
    assert "1 seed;" in s.caption("x")  # no runs given: the profile's default
    for run in plan.orthogonality(p):
        _fake_record(tmp_path, run, 50.0)
    runs = s.runs(plan.orthogonality(p))
    assert len(runs) == 6
    assert "3 seeds;" in s.caption("x", runs) and "15 epochs" in s.caption("x", runs)
    assert "1 seed;" in s.caption("x", [r for r in runs if r[0].config.seed == 0])
    assert "1 seed;" in s.caption("x")  # fetching runs leaves later captions alone
    other = s.caption("x", runs, basis="bench records")
    assert other == "x [bench records; regenerate: `elrt reproduce --profile cpu --only 02_orthogonality_on_off`]"


def test_cpu_plan_and_best_regularizer(tmp_path):
    p = profiles.load("cpu")
    first = plan.plan(p, ("approximation", "orthogonality", "regularizers"))
    assert [r.part for r in first][:3] == ["approximation", "orthogonality", "orthogonality"]
    # on/off: 2 settings x 3 seeds; the regularizer comparison (1 seed) shares none and SO on U2 of seed 0
    assert len({r.config.hash for r in first}) == len(first) == 1 + 6 + 7
    assert {r.config.seed for r in plan.orthogonality(p)} == {0, 1, 2}
    assert {r.config.seed for r in plan.regularizers(p)} == {0}
    with pytest.raises(plan.MissingRun, match="incomplete"):
        plan.main(p, root=tmp_path)
    for i, run in enumerate(plan.regularizers(p)):  # fake finished records: DSO on U1+U2 wins
        acc = 80.0 if (run.config.reg, run.config.reg_on) == ("dso", ("U1", "U2")) else 50.0 + i
        _fake_record(tmp_path, run, acc)
    assert plan.best_regularizer(p, tmp_path)[:2] == ("dso", ("U1", "U2"))
    main = plan.main(p, root=tmp_path)
    elrt = [r for r in main if r.method.startswith("ELRT")]
    assert {(r.config.model, r.config.flops_ratio) for r in elrt} == {("resnet20", 2.0), ("resnet20", 3.0), ("resnet56", 2.0)}
    assert all(r.config.reg == "dso" and r.config.reg_weight == p.reg_weight("dso", ("U1", "U2")) for r in elrt)
    assert {r.method for r in main} >= {"dense", "Tucker-2, no regularizer", "matrix, no regularizer", "spatial, no regularizer"}
