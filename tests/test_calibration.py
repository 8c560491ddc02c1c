"""Lambda per network: every stored value follows the documented rule, for every network a profile trains."""

from dataclasses import asdict

import pytest

from elrt_core import calibration, profiles
from elrt_core.study import plan


def _settings():
    seen = set()
    for name in profiles.names():
        for run in plan.plan(profiles.load(name)):
            if run.config.reg != "none":
                seen.add(calibration.RegSetting.of(asdict(run.config)))
    return sorted(seen, key=lambda s: s.keys)


@pytest.mark.parametrize("setting", _settings(), ids=lambda s: "/".join(s.keys))
def test_stored_lambda_follows_the_rule(setting):
    stored = calibration.reg_weight(setting)
    rule, penalty = calibration.calibrate(setting)
    assert stored == rule
    assert 2 / 3 - 1e-9 <= stored * penalty <= 4 / 3 + 1e-9  # the rounding's bounds: the penalty starts near 1


def test_resnet56_gets_less_lambda_than_resnet20():
    """More factors, a larger penalty at initialization, a smaller lambda (the reviewer's finding)."""
    r20 = calibration.reg_weight(calibration.RegSetting("resnet20", "tucker2", "so", ("U1", "U2"), True, flops_ratio=2.0))
    r56 = calibration.reg_weight(calibration.RegSetting("resnet56", "tucker2", "so", ("U1", "U2"), True, flops_ratio=2.0))
    assert r56 < r20 / 2


def test_keys_and_the_missing_value_error(tmp_path):
    assert calibration.network_key("resnet20", "tucker2", flops_ratio=2.0) == "resnet20-tucker2-2xflops"
    assert calibration.setting_key("so", ("U1", "U2"), True) == "so-U1+U2-per_rank"
    path = tmp_path / "weights.yaml"
    calibration.write({"net": {"so-U2": 0.5}}, path)
    calibration.write({"net": {"mc-U2": 0.1}}, path)
    assert calibration.table(path) == {"net": {"mc-U2": 0.1, "so-U2": 0.5}}


def test_calibrate_needs_no_stored_lambda_to_compute_the_missing_ones(monkeypatch, capsys):
    """A user who adds a regularized method runs `elrt calibrate --write` before any lambda of it exists."""
    from elrt_core import calibration, cli, profiles
    from elrt_core.config import ConfigError
    from elrt_core.study import plan

    full = profiles.load("cpu-full")
    planned = {calibration.RegSetting.of(vars(r.config)) for r in plan.plan(full) if r.config.reg != "none"}
    assert profiles.load("cpu-full", check_lambdas=False).reg_settings() == planned

    def missing(setting):
        raise ConfigError("no calibrated lambda")

    monkeypatch.setattr(calibration, "reg_weight", missing)
    monkeypatch.setattr(calibration, "calibrate", lambda s: (1.0, 1.0))  # no network built: only the lookup is under test
    monkeypatch.setattr(calibration, "table", lambda: {})
    assert cli.main(["calibrate", "--profile", "cpu-quick"]) == 1  # every value missing: it says so, no traceback
    assert "rerun with --write" in capsys.readouterr().out
