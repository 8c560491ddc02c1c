"""Approximation analysis: monotone in rank, exact at full rank, equal-cost rank choice."""

import pytest
import torch

from elrt_core import analysis, models
from elrt_core.lowrank import FORMATS


@pytest.mark.parametrize("fmt", ["tucker2", "matrix", "spatial"])
def test_error_decreases_with_rank_and_is_zero_at_full_rank(fmt):
    torch.manual_seed(0)
    w = torch.randn(12, 8, 3, 3)
    cls = FORMATS[fmt]
    n = cls.n_steps(8, 12, (3, 3))
    errs = [analysis.approximation_error(w, fmt, ranks=cls.rank_at(8, 12, (3, 3), s)).rel_error for s in range(1, n + 1)]
    assert all(b <= a + 1e-9 for a, b in zip(errs, errs[1:])), errs
    assert errs[0] > 0.1 and errs[-1] == pytest.approx(0.0, abs=1e-20)


def test_cp_error_decreases_with_rank():
    torch.manual_seed(1)
    w = torch.randn(8, 8, 3, 3)
    errs = [analysis.approximation_error(w, "cp", ranks=r).rel_error for r in (1, 4, 16, 40)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs


def test_equal_cost_rank_choice_and_mse():
    torch.manual_seed(2)
    w = torch.randn(32, 32, 3, 3)
    for fmt in FORMATS:
        a = analysis.approximation_error(w, fmt, macs_ratio=2)
        assert a.macs <= a.dense_macs / 2  # fits the budget
        cls = FORMATS[fmt]
        step = [s for s in range(1, cls.n_steps(32, 32, (3, 3)) + 1) if cls.rank_at(32, 32, (3, 3), s) == a.ranks][0]
        geom = analysis._default_geometry(w)
        next_macs = cls.cost(geom, cls.rank_at(32, 32, (3, 3), step + 1))[0]
        assert next_macs > a.dense_macs / 2  # and is the largest rank that does
        assert a.mse == pytest.approx(a.rel_error * (w.double() ** 2).mean().item())


def test_layer_errors_frame():
    df = analysis.layer_errors(models.get("resnet20"), ["tucker2", "matrix"], 2.0)
    assert len(df) == 18 * 2
    assert set(df.columns) >= {"layer", "format", "ranks", "macs", "mse", "rel_error", "macs_ratio"}
    assert (df["macs_ratio"] >= 2).all() and (df["rel_error"] > 0).all()


def test_bad_input():
    w = torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match="exactly one"):
        analysis.approximation_error(w, "tucker2")
    with pytest.raises(ValueError, match="must be > 1"):
        analysis.approximation_error(w, "tucker2", macs_ratio=1)
    with pytest.raises(ValueError, match="unknown low-rank format"):
        analysis.approximation_error(w, "tt", macs_ratio=2)
    with pytest.raises(ValueError, match="C_out, C_in"):
        analysis.approximation_error(torch.randn(4, 4), "tucker2", macs_ratio=2)
