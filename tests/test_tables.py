from pathlib import Path
from types import SimpleNamespace

from elrt_core.study import tables


def _planned(method):
    return SimpleNamespace(method=method, label=method.upper())


def test_table_captions_name_planned_methods_without_runs():
    planned = [_planned(m) for m in ("dense", "tucker2", "elrt", "tucker2")]
    runs = [(_planned("dense"), None), (_planned("elrt"), None)]
    assert tables.without_runs(planned, runs) == " Planned, without finished runs so far: TUCKER2."
    assert tables.without_runs(planned[:1], runs) == ""
    assert tables.without_runs(planned, []) == " Planned, without finished runs so far: DENSE · TUCKER2 · ELRT."


def test_summary_counts_a_run_listed_twice_once():
    from elrt_core import profiles, records
    from elrt_core.study import plan

    dense = [r for r in plan.plan(profiles.load("cpu-full")) if r.method == "dense"][:2]

    def record(run, acc):
        data = records.build(
            run.config,
            status="finished",
            history=[{"epoch": 1, "train_loss": 1.0, "test_top1": acc}],
            sizes={"train_images": 1, "val_images": 0, "test_images": 1},
            cost={"macs": 10, "params": 5, "macs_ratio": 1.0, "params_ratio": 1.0},
            provenance={"train_wall_seconds": 600, "device_name": "cpu-x"},
        )
        return records.Record(Path("."), run.config, data)

    runs = [(dense[0], record(dense[0], 80.0)), (dense[1], record(dense[1], 82.0))]
    row = tables.summary(runs + runs).iloc[0]  # the dense runs of the 2x and of the 3x list
    assert row["n"] == 2 and row["test_top1"] == 81.0 and row["test_text"].endswith("(2)")
    assert row["epochs_text"] == "15"


def test_the_epochs_of_a_compression_run_count_the_dense_run_it_decomposes():
    from elrt_core import profiles
    from elrt_core.study import plan

    everything = plan.plan(profiles.load("cpu-full"))
    compress = next(r for r in everything if r.method == "compress")
    dense = next(r for r in everything if r.method == "dense" and r.config.hash == compress.config.decomposes)
    assert tables.epochs_text(compress.config, {dense.config.hash: dense.config.epochs}) == "15 + 5"
    assert tables.epochs_text(compress.config, {}) == "? + 5"  # its dense run is not among the runs shown
    assert tables.epochs_text(dense.config, {}) == "15"
