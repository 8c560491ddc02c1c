"""TrainConfig: validation messages, hashing, strict parsing."""

import pytest

from elrt_core.config import ConfigError, TrainConfig


def test_hash_is_stable_and_sensitive():
    a = TrainConfig(format="tucker2", flops_ratio=2)
    assert a.hash == TrainConfig(format="tucker2", flops_ratio=2.0).hash  # int and float ratios alike
    assert a.hash != TrainConfig(format="tucker2", flops_ratio=2, seed=1).hash
    assert len(a.hash) == 16 and a.name.startswith("resnet20-tucker2-2xflops-s0-")
    for name, whole in [("lr", 1), ("weight_decay", 0), ("warmup_epochs", 2), ("label_smoothing", 0), ("momentum", 0)]:
        same = TrainConfig(**{name: whole}), TrainConfig(**{name: float(whole)})
        assert same[0] == same[1] and same[0].hash == same[1].hash, name  # a YAML 0 is the setting 0.0


def test_round_trip_and_replace():
    c = TrainConfig(format="matrix", params_ratio=3, reg="mc", reg_weight=0.1, reg_on=["U1", "U2"])
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert c.replace(seed=4).seed == 4 and c.replace(seed=4).hash != c.hash


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"model": "resnet21"}, "unknown model 'resnet21'; allowed: resnet20"),
        ({"format": "svd", "flops_ratio": 2}, "unknown format 'svd'; allowed: dense, tucker2"),
        ({"format": "tucker2", "flops_ratio": 1.0}, "flops_ratio must be > 1"),
        ({"format": "tucker2"}, "exactly one of flops_ratio, params_ratio"),
        ({"flops_ratio": 2}, "dense model takes no reduction ratio"),
        ({"format": "tucker2", "flops_ratio": 2, "reg": "l2", "reg_weight": 1}, "unknown regularizer 'l2'"),
        ({"format": "tucker2", "flops_ratio": 2, "reg": "so", "reg_weight": -1.0}, "reg_weight must be >= 0"),
        ({"format": "tucker2", "flops_ratio": 2, "reg": "so"}, "needs reg_weight > 0"),
        ({"reg": "so", "reg_weight": 1.0}, "choose a low-rank format"),
        ({"format": "tucker2", "flops_ratio": 2, "reg_on": ["U3"]}, "reg_on must name factors"),
        ({"format": "tucker2", "flops_ratio": 2, "reg_on": 5}, "reg_on must be a factor name or a list of them, got 5"),
        ({"epochs": 0}, "epochs must be > 0"),
        ({"epochs": 2.5}, "epochs must be an integer"),
        ({"batch_size": -3}, "batch_size must be > 0"),
        ({"schedule": "linear"}, "unknown schedule 'linear'; allowed: cosine, step, onecycle"),
        ({"lr": 0}, "lr must be > 0"),
        ({"subset": 0}, "subset must be a positive integer"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist'"),
        ({"flops_ratio": float("nan"), "format": "cp"}, "finite number"),
    ],
)
def test_invalid_settings_name_the_value_and_the_allowed_ones(fields, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**fields)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match=r"unknown config keys \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_added_fields_leave_old_hashes_alone_and_change_new_ones():
    base = TrainConfig(format="tucker2", flops_ratio=2)
    assert (
        TrainConfig.from_dict(
            {k: v for k, v in base.to_dict().items() if k not in ("val_split", "orth_init", "no_decay_on")}
        ).hash
        == base.hash
    )
    assert base.replace(val_split=5000).hash != base.hash
    assert base.replace(orth_init=["U2"]).hash != base.replace(no_decay_on=["U2"]).hash != base.hash
    assert "orthinit-U2" in base.replace(orth_init=["U2"]).name


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"val_split": -1}, "val_split must be an integer >= 0"),
        ({"format": "tucker2", "flops_ratio": 2, "orth_init": ["U3"]}, "orth_init must name distinct factors"),
        ({"format": "matrix", "flops_ratio": 2, "no_decay_on": ["U2"]}, "format must be tucker2"),
    ],
)
def test_new_fields_are_validated(fields, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**fields)


def test_rank_rule_default_keeps_every_old_hash_and_a_table_makes_a_new_config():
    """Hashes computed before ``rank_rule`` existed (commit 715e83a) are unchanged at its default."""
    assert TrainConfig().hash == "9b71b81724d8cbf5"
    assert TrainConfig(format="tucker2", flops_ratio=2).hash == "ba4e181118a83f9e"
    assert (
        TrainConfig(model="resnet56", format="tucker2", flops_ratio=3, reg="so", reg_weight=0.01, seed=2).hash
        == "e0592f8710981a4f"
    )
    hw = TrainConfig(format="tucker2", flops_ratio=2, rank_rule="hw:0123456789ab")
    assert hw.hash != "ba4e181118a83f9e" and "-hwranks-" in hw.name
    assert TrainConfig.from_dict(hw.to_dict()) == hw and hw.to_dict()["rank_rule"] == "hw:0123456789ab"


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"format": "tucker2", "flops_ratio": 2, "rank_rule": "hw"}, "'hw' alone is resolved"),
        ({"format": "tucker2", "flops_ratio": 2, "rank_rule": "hw:xyz"}, "rank_rule must be 'uniform' or 'hw:<12 hex"),
        ({"format": "tucker2", "flops_ratio": 2, "rank_rule": "fast"}, "got 'fast'"),
        ({"rank_rule": "hw:0123456789ab"}, "choose a low-rank format"),
    ],
)
def test_invalid_rank_rules(fields, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**fields)
