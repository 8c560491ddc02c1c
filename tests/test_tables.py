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
