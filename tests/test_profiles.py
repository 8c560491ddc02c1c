"""Methods, profiles and the run plan: validated, ordered by priority, ELRT's recipe fixed in advance."""

import pytest

from elrt_core import profiles, records
from elrt_core.config import ConfigError
from elrt_core.study import Session, plan


def test_profiles_load_and_describe_their_data():
    assert profiles.names() == ["smoke", "cpu-full", "cpu-full-30", "cpu-full-60", "cpu-quick", "paper"]
    full = profiles.load("cpu-full")
    assert full.describe() == (
        "profile 'cpu-full': 15 epochs, 45,000 training images, 5,000 held out for validation, full 10,000-image test set"
    )
    assert full.base_config().val_split == 5000 and profiles.load("cpu-quick").base_config().val_split == 0
    assert "10,000-image training subset" in profiles.load("cpu-quick").describe()
    # the regime axis: the same data and schedule as cpu-full, twice the epochs, so every run differs only there
    longer = profiles.load("cpu-full-30")
    assert {**longer.train, "epochs": 15} == dict(full.train) and longer.base_config().epochs == 30
    longest = profiles.load("cpu-full-60")
    assert {**longest.train, "epochs": 15} == dict(full.train) and longest.base_config().epochs == 60
    # the profiles whose epochs cost the same: the same data and settings, another length (smoke never counts)
    assert profiles.same_data("cpu-full-60") == ["cpu-full", "cpu-full-30"]
    assert profiles.same_data("cpu-quick") == [] and profiles.same_data("paper") == []
    with pytest.raises(
        ConfigError, match="unknown profile 'gpu'; allowed: smoke, cpu-full, cpu-full-30, cpu-full-60, cpu-quick, paper"
    ):
        profiles.load("gpu")


def test_elrt_recipe_is_fixed_in_advance_not_chosen_by_a_result():
    elrt = profiles.methods()["elrt"]
    assert elrt.fields == {"format": "tucker2", "reg": "so", "reg_on": ["U1", "U2"], "reg_per_rank": True}
    config = profiles.load("cpu-full").config("elrt", "resnet20", 2.0, seed=3)
    assert (config.format, config.reg, config.reg_on, config.reg_per_rank, config.seed) == (
        "tucker2",
        "so",
        ("U1", "U2"),
        True,
        3,
    )
    assert config.val_split == 5000 and config.flops_ratio == 2.0


def test_lambda_scales_and_dense_ignores_the_budget():
    p = profiles.load("cpu-quick")
    so = p.config("tucker2+so", "resnet20", 2.0, 0).reg_weight
    assert p.config("tucker2+so/4", "resnet20", 2.0, 0).reg_weight == pytest.approx(so / 4)
    assert p.config("tucker2+so*4", "resnet20", 2.0, 0).reg_weight == pytest.approx(so * 4)
    assert p.config("dense", "resnet20", 2.0, 0) == p.config("dense", "resnet20", 3.0, 0)
    with pytest.raises(ConfigError, match="no calibrated lambda"):
        p.config("tucker2+so", "resnet32", 2.0, 0)


def test_cpu_full_plan_follows_the_priorities_seed_by_seed():
    runs = plan.plan(profiles.load("cpu-full"))
    # priorities 1-6 (6: hardware-aware ranks), then issue 25's mechanism (7), fair baselines (8), compression and
    # lambda (9), 1/rank (10) and equal-epochs compression (11) runs
    assert len(runs) == len({r.config.hash for r in runs}) == 20 + 9 + 6 + 9 + 6 + 3 + 6 + 6 + 9 + 3 + 6
    assert [r.priority for r in runs] == sorted(r.priority for r in runs)
    first = [(r.method, r.config.seed) for r in runs[:8]]
    assert first == [
        ("dense", 0),
        ("tucker2", 0),
        ("tucker2+so", 0),
        ("elrt", 0),
        ("dense", 1),
        ("tucker2", 1),
        ("tucker2+so", 1),
        ("elrt", 1),
    ]
    assert len(plan.plan(profiles.load("cpu-full"), max_priority=1)) == 20
    orth = plan.comparison(profiles.load("cpu-full"), "orthogonality")
    assert [r.method for r in orth] == ["tucker2"] * 5 + ["tucker2+so"] * 5
    assert plan.approximation_run(profiles.load("cpu-full")).config.name.startswith("resnet20-dense-s0-")
    assert plan.networks(profiles.load("cpu-full")) == [("resnet20", 2.0), ("resnet20", 3.0)]


def test_the_plan_of_chosen_methods_keeps_its_order_and_names_an_unknown_method():
    full = plan.plan(profiles.load("cpu-full"))
    chosen = plan.plan(profiles.load("cpu-full"), only=["tucker2-hw", "dense"])
    assert chosen == [r for r in full if r.method in ("tucker2-hw", "dense")]
    assert [r.method for r in chosen] == ["dense"] * 5 + ["tucker2-hw"] * 3
    with pytest.raises(ValueError, match="trains no hw; its methods: compress, compress-10, cp, dense, dense-10, elrt"):
        plan.plan(profiles.load("cpu-full"), only=["hw"])
    with pytest.raises(ValueError, match="no method named"):
        plan.plan(profiles.load("cpu-full"), only=[])
    with pytest.raises(TypeError, match="not the string 'dense'"):
        plan.plan(profiles.load("cpu-full"), only="dense")


def test_select_keeps_dense_at_every_budget():
    runs = plan.plan(profiles.load("cpu-quick"))
    at3 = plan.select(runs, model="resnet20", flops_ratio=3.0, methods=("dense", "elrt"))
    assert [r.method for r in at3] == ["dense", "elrt"] and at3[1].config.flops_ratio == 3.0


def test_committed_records_keep_their_identity():
    """Adding config fields must not orphan a record: every committed record parses, none is stale,
    and the quick profile's plan finds its 18 earlier runs."""
    good, bad = records.scan(records.results_root())
    assert not bad, bad
    p = profiles.load("cpu-quick")
    found = [r for r in plan.plan(p) if records.find(r.config, records.results_root() / p.name)]
    assert len(found) >= 18


def _fake_record(root, profile, run, acc, wall_seconds=None, status="finished"):
    records.write_json(
        root / profile / run.config.name / "record.json",
        records.build(
            run.config,
            status=status,
            history=[
                {"epoch": e, "train_loss": 1.0, "test_top1": acc}
                for e in range(1, (run.config.epochs if status == "finished" else 1) + 1)
            ],
            sizes={"train_images": 1, "val_images": 0, "test_images": 1},
            cost={},
            provenance={} if wall_seconds is None else {"train_wall_seconds": wall_seconds},
            divergence={"epoch": 1, "step": 3, "reason": "loss became nan"} if status == "diverged" else None,
        ),
    )


def test_sessions_show_the_runs_that_exist_with_their_true_n(tmp_path):
    p = profiles.load("cpu-full")
    runs = plan.comparison(p, "orthogonality")
    for run in runs[:3] + runs[5:6]:  # tucker2 seeds 0-2, tucker2+so seed 0
        _fake_record(tmp_path, "cpu-full", run, 50.0)
    s = Session("cpu-full", str(tmp_path), train_missing=False, notebook="02_orthogonality_on_off")
    found = s.runs(runs)
    assert len(found) == 4 and len(s.missing) == 6
    assert s.scale(found).endswith("n = 1–3 seeds per method")
    assert s.scale([]).endswith("no finished runs yet")


def test_a_diverged_seed_is_neither_missing_nor_retrained_and_the_scale_says_it_was_lost(tmp_path, monkeypatch):
    runs = plan.comparison(profiles.load("cpu-full"), "orthogonality")  # tucker2 s0-4, then tucker2+so s0-4
    for run in runs[:2] + runs[5:7]:
        _fake_record(tmp_path, "cpu-full", run, 50.0)
    _fake_record(tmp_path, "cpu-full", runs[2], 10.0, status="diverged")  # tucker2 seed 2
    trained = []
    monkeypatch.setattr("elrt_core.study.session.get_or_run", lambda config, *a, **k: trained.append(config))  # trains nothing
    s = Session("cpu-full", str(tmp_path), train_missing=True, notebook="02_orthogonality_on_off")
    found = s.runs(runs)
    assert len(found) == 4 and found.diverged == [runs[2]] and runs[2] not in s.missing
    assert len(trained) == 5 and runs[2].config not in trained  # the missing ones only
    assert s.scale(found).endswith(f"n = 2 seeds per method; 1 diverged run left out ({runs[2].config.name})")
    assert "diverged" not in s.scale(s.runs(runs[5:7]))  # another comparison's runs do not inherit the note
    both = s.runs(runs[:5]) + s.runs(runs[5:])
    assert both.diverged == [runs[2]] and len(both) == 4
    for run in runs[:2]:  # every finished seed of tucker2 diverged too: the method has no run left, and the note says why
        _fake_record(tmp_path, "cpu-full", run, 10.0, status="diverged")
    alone = s.runs(runs[:5])
    assert s.scale(alone).endswith(
        "no finished runs yet; 3 diverged runs left out (" + ", ".join(sorted(r.config.name for r in runs[:3])) + ")"
    )


def test_a_paragraph_is_shown_as_markdown_with_its_title_in_bold(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    Session.paragraph("Accuracy of the hardware-aware ranks", "No seed has both runs yet.")
    assert len(shown) == 1 and isinstance(shown[0], IPython.display.Markdown)
    assert shown[0].data == "**Accuracy of the hardware-aware ranks.** No seed has both runs yet."


def test_a_comparison_the_profile_does_not_train_is_read_from_the_profile_that_does(tmp_path, monkeypatch):
    longer, full = profiles.load("cpu-full-30"), profiles.load("cpu-full")
    assert plan.lender(longer, "orthogonality") is longer  # its own runs where it trains them
    lender = plan.lender(longer, "sensitivity")
    assert lender is not None and lender.name == "cpu-full"  # the first profile of the file that trains it
    runs = plan.comparison(full, "sensitivity")
    for run in runs[:2]:
        _fake_record(tmp_path, "cpu-full", run, 50.0)
    monkeypatch.setattr("elrt_core.study.session.get_or_run", lambda *a, **k: pytest.fail("a borrowed run was trained"))
    s = Session("cpu-full-30", str(tmp_path), train_missing=True, notebook="03_regularizer_comparison")
    found = s.runs(runs, lender)
    assert [r for r, _ in found] == runs[:2] and s.missing == []  # read, never trained, not this profile's missing
    assert s.borrowed == {"cpu-full": {"tucker2+so", "tucker2+so/4", "tucker2+so*4"}}
    assert s.scale(found, lender).startswith("profile 'cpu-full': 15 epochs, 45,000 training images")
    # cpu-full's check has no run of λ/4 or 4λ yet: with the results folder, the quick check that has them is shown
    for run in plan.comparison(profiles.load("cpu-quick"), "sensitivity"):
        _fake_record(tmp_path, "cpu-quick", run, 50.0)
    assert plan.lender(full, "sensitivity", tmp_path).name == "cpu-quick"
    for run in runs:
        _fake_record(tmp_path, "cpu-full", run, 50.0)
    assert plan.lender(full, "sensitivity", tmp_path).name == "cpu-full"  # its own, once every strength has a run

    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    s.reproduce()
    assert "elrt reproduce --profile cpu-full-30 --only 03_regularizer_comparison" in shown[0].data
    assert "elrt batch --profile cpu-full --methods 'tucker2+so,tucker2+so*4,tucker2+so/4'" in shown[0].data


def test_the_reproduce_snippet_counts_the_missing_runs_and_estimates_their_hours(tmp_path, monkeypatch):
    import IPython.display

    runs = plan.comparison(profiles.load("cpu-full"), "orthogonality")  # 5 seeds of tucker2 and tucker2+so
    for run in runs[:4]:
        _fake_record(tmp_path, "cpu-full", run, 50.0, wall_seconds=45 * 60)
    s = Session("cpu-full", str(tmp_path), train_missing=False, notebook="02_orthogonality_on_off")
    s.runs(runs)
    s.runs(runs)  # a chapter that reads the same runs twice counts each missing run once
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    s.reproduce()
    text = shown[0].data
    assert "--only 02_orthogonality_on_off --reuse-only   # execute it from the runs that exist; trains nothing" in text
    assert "# train its 6 missing runs first, about 4.5 run-hours at the median epoch of the runs it read" in text
    s = Session("cpu-full", str(tmp_path), train_missing=False, notebook="02_orthogonality_on_off")
    s.runs(runs[:4])
    shown.clear()
    s.reproduce()
    assert "missing" not in shown[0].data  # nothing to train: only the re-execution


def test_the_provenance_table_says_which_records_the_plan_of_their_profile_holds(tmp_path):
    from dataclasses import replace

    from elrt_core.study import provenance

    run = plan.plan(profiles.load("cpu-quick"))[0]
    _fake_record(tmp_path, "cpu-quick", run, 50.0)
    earlier = replace(run, config=replace(run.config, epochs=run.config.epochs + 1))  # a design the plan no longer has
    _fake_record(tmp_path, "cpu-quick", earlier, 40.0)
    _fake_record(tmp_path, "engine-50k", run, 45.0)
    table, problems = provenance.records_table(tmp_path)
    assert not problems
    by_top1 = dict(zip(table["final_top1"], table["in_plan"], strict=True))
    assert by_top1 == {50.0: "yes", 40.0: "no", 45.0: "no profile"}


def test_the_provenance_table_tells_runs_apart_that_differ_only_in_lambda(tmp_path):
    from elrt_core.study import provenance

    runs = [r for r in plan.plan(profiles.load("cpu-quick")) if r.config.seed == 0 and r.method.startswith("tucker2")]
    strengths = {r.method: r for r in runs if r.method in ("tucker2", "tucker2+so", "tucker2+so/4", "tucker2+so*4")}
    for i, run in enumerate(strengths.values()):
        _fake_record(tmp_path, "cpu-quick", run, 60.0 + i)
    table, _ = provenance.records_table(tmp_path)
    lam = dict(zip(table["final_top1"], table["reg_weight"], strict=True))
    so = strengths["tucker2+so"].config.reg_weight
    by_method = {m: lam[60.0 + i] for i, m in enumerate(strengths)}
    assert by_method["tucker2+so/4"] == pytest.approx(so / 4) and by_method["tucker2+so*4"] == pytest.approx(4 * so)
    assert by_method["tucker2"] is None or by_method["tucker2"] != by_method["tucker2"]  # no regularizer: no λ (None or NaN)


def test_the_equal_epochs_compression_decomposes_its_own_dense_run():
    full = profiles.load("cpu-full")
    short = full.config("dense-10", "resnet20", 2.0, 1)
    assert short.epochs == 10 and short.hash != full.config("dense", "resnet20", 2.0, 1).hash
    assert full.config("compress-10", "resnet20", 2.0, 1).decomposes == short.hash
    assert full.config("compress", "resnet20", 2.0, 1).decomposes == full.config("dense", "resnet20", 2.0, 1).hash


def test_dense_method_must_name_a_dense_run_from_scratch(tmp_path, monkeypatch):
    text = profiles.PROFILES_FILE.read_text()
    for old, new, message in [
        ("dense_method: dense-10,", "dense_method: tucker2,", "must name a dense method trained from scratch"),
        ("dense_method: dense-10,", "dense_method: nothing,", "must name a dense method trained from scratch"),
        (
            'tucker2: {label: "Tucker-2", format: tucker2}',
            'tucker2: {label: "T", format: tucker2, dense_method: dense-10}',
            "it needs init: dense",
        ),
    ]:
        assert old in text
        bad = tmp_path / "profiles.yaml"
        bad.write_text(text.replace(old, new))
        monkeypatch.setattr(profiles, "PROFILES_FILE", bad)
        profiles.methods.cache_clear()
        try:
            with pytest.raises(ConfigError, match=message):
                profiles.methods()
        finally:
            profiles.methods.cache_clear()
