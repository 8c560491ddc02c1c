"""Approximation analysis: exact errors, exact equal-cost budgets, the Tucker-2 frontier search."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from elrt_core import analysis, models
from elrt_core.cost import trace_convs
from elrt_core.lowrank import FORMATS

TRAINED = Path(__file__).resolve().parents[1] / "results" / "cpu-quick" / "resnet20-dense-s0-c431b40e" / "weights.pt"


def _small_net() -> nn.Module:
    """Three small convs (the first is skipped by the analysis), one with stride 2."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.Conv2d(12, 10, 3, padding=1)
    ).eval()


def _geometry(c_in: int, c_out: int, stride: int = 1):
    return trace_convs(nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)), (c_in, 16, 16))["0"]


def _trained_kernel(name: str) -> torch.Tensor:
    return torch.load(TRAINED, map_location="cpu")[f"{name}.weight"]


def _initial_kernel(name: str) -> torch.Tensor:
    torch.manual_seed(0)
    return models.get("resnet20").state_dict()[f"{name}.weight"]


@pytest.mark.parametrize("fmt", ["tucker2", "matrix", "spatial"])
def test_error_decreases_with_rank_and_is_zero_at_full_rank(fmt):
    torch.manual_seed(0)
    w = torch.randn(12, 8, 3, 3)
    cls = FORMATS[fmt]
    n = cls.n_steps(8, 12, (3, 3))
    errs = [analysis.approximation_error(w, fmt, cls.rank_at(8, 12, (3, 3), s)).rel_error for s in range(1, n + 1)]
    assert all(b <= a + 1e-9 for a, b in zip(errs, errs[1:])), errs
    assert errs[0] > 0.1 and errs[-1] == pytest.approx(0.0, abs=1e-20)


def test_cp_error_decreases_with_rank():
    torch.manual_seed(1)
    w = torch.randn(8, 8, 3, 3)
    errs = [analysis.approximation_error(w, "cp", r).rel_error for r in (1, 4, 16, 40)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs


def test_svd_errors_are_the_discarded_energy():
    m = np.diag([3.0, 2.0, 1.0]) @ np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    np.testing.assert_allclose(analysis.svd_errors(m), [1.0, 5 / 14, 1 / 14, 0.0], atol=1e-12)


@pytest.mark.parametrize("fmt", ["matrix", "spatial"])
def test_matrix_format_errors_match_a_direct_reconstruction(fmt):
    torch.manual_seed(3)
    w = torch.randn(10, 6, 3, 3)
    fits = analysis.KernelFits(w, FORMATS[fmt])
    for r in (1, 2, 5, 9, FORMATS[fmt].max_ranks(6, 10, (3, 3))[0]):
        direct = analysis.approximation_error(w, fmt, r)
        assert fits.error((r,)) == pytest.approx(direct.rel_error, rel=1e-9, abs=1e-15)


def test_hosvd_errors_match_a_projection_and_bound_hooi():
    torch.manual_seed(4)
    w = torch.randn(9, 7, 3, 3).double()
    table = analysis.hosvd_errors(w.numpy(), (1, 0))
    assert table.shape == (8, 10) and table[0, 0] == pytest.approx(1.0) and table[7, 9] == pytest.approx(0.0, abs=1e-12)
    u_out = np.linalg.svd(w.numpy().reshape(9, -1))[0]
    u_in = np.linalg.svd(w.numpy().transpose(1, 0, 2, 3).reshape(7, -1))[0]
    for r_in, r_out in [(2, 3), (5, 4), (7, 1)]:
        p_out, p_in = u_out[:, :r_out] @ u_out[:, :r_out].T, u_in[:, :r_in] @ u_in[:, :r_in].T
        projected = np.einsum("oihw,po,qi->pqhw", w.numpy(), p_out, p_in)
        direct = ((w.numpy() - projected) ** 2).sum() / (w.numpy() ** 2).sum()
        assert table[r_in, r_out] == pytest.approx(direct, rel=1e-9)
        hooi = analysis.approximation_error(w, "tucker2", (r_in, r_out)).rel_error
        assert hooi <= table[r_in, r_out] + 1e-12


def _brute_frontier(cls, geom, cap, by):
    """Every maximal fitting configuration, by enumerating all rank tuples."""
    full = cls.max_ranks(geom.in_channels, geom.out_channels, geom.kernel_size)
    cost = {r: analysis._cost(cls, geom, r, by) for r in itertools.product(*(range(1, f + 1) for f in full))}
    fits = {r for r, c in cost.items() if c <= cap}
    return {r for r in fits if all(r[:j] + (r[j] + 1,) + r[j + 1 :] not in fits for j in range(len(r)))}


@pytest.mark.parametrize("by", ["macs", "params"])
@pytest.mark.parametrize("ratio", [1.5, 2.0, 3.0, 6.0])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_frontier_is_every_maximal_configuration_within_budget(fmt, ratio, by):
    cls, geom = FORMATS[fmt], _geometry(6, 9, stride=2)
    cap = analysis._cap(geom, ratio, by)
    found = analysis.frontier(cls, geom, cap, by)
    assert len(found) == len(set(found)) and set(found) == _brute_frontier(cls, geom, cap, by)
    assert found  # every format reaches these budgets on this layer


@pytest.mark.parametrize("by", ["macs", "params"])
def test_best_approximation_is_exactly_within_budget(by):
    torch.manual_seed(5)
    w = torch.randn(12, 8, 3, 3)
    geom = _geometry(8, 12)
    for fmt, ratio in itertools.product(FORMATS, (2.0, 3.0, 4.0)):
        a = analysis.best_approximation(w, fmt, ratio, by, geom)
        cap = analysis._cap(geom, ratio, by)
        assert (a.macs if by == "macs" else a.params) <= cap
        assert a.ranks in analysis.frontier(FORMATS[fmt], geom, cap, by)  # no larger configuration fits
        assert a.rel_error == pytest.approx(analysis.approximation_error(w, fmt, a.ranks, geom).rel_error, rel=1e-6)
        assert a.mse == pytest.approx(a.rel_error * (w.double() ** 2).mean().item())


def test_no_configuration_within_budget_gives_none():
    geom = _geometry(4, 4)  # matrix rank 1 costs 40/144 of the dense layer
    assert analysis.best_approximation(torch.randn(4, 4, 3, 3), "matrix", 4.0, "macs", geom) is None
    assert analysis.best_approximation(torch.randn(4, 4, 3, 3), "matrix", 3.0, "macs", geom).ranks == (1,)


@pytest.mark.parametrize("layer", ["layer1.1.conv2", "layer2.1.conv1"])
def test_tucker2_frontier_search_beats_the_fixed_proportion_pair(layer):
    w = _trained_kernel(layer)
    c_out, c_in = w.shape[:2]
    geom = _geometry(c_in, c_out)
    cls = FORMATS["tucker2"]
    for ratio in (2.0, 3.0):
        cap = analysis._cap(geom, ratio, "macs")
        steps = [
            s
            for s in range(1, cls.n_steps(c_in, c_out, (3, 3)) + 1)
            if cls.cost(geom, cls.rank_at(c_in, c_out, (3, 3), s))[0] <= cap
        ]
        ladder = analysis.approximation_error(w, "tucker2", cls.rank_at(c_in, c_out, (3, 3), max(steps)), geom)
        best = analysis.best_approximation(w, "tucker2", ratio, "macs", geom)
        assert best.rel_error <= ladder.rel_error and best.macs <= cap
        assert best.fitted == best.frontier > 1


def _screened_and_best(w: torch.Tensor, layer: str, ratio: float, by: str = "macs") -> tuple[float, float]:
    """Best-fit error with the HOSVD screening (:data:`analysis.TUCKER_CANDIDATES` pairs) and with
    every frontier pair fitted."""
    geom = trace_convs(models.get("resnet20"), (3, 32, 32))[layer]
    fits = analysis.KernelFits(w, FORMATS["tucker2"])
    screened = analysis.best_approximation(w, "tucker2", ratio, by, geom, analysis.TUCKER_CANDIDATES, fits)
    best = analysis.best_approximation(w, "tucker2", ratio, by, geom, None, fits)
    assert screened.fitted == analysis.TUCKER_CANDIDATES < screened.frontier == best.fitted == best.frontier
    return screened.rel_error, best.rel_error


# the hardest cases found by fitting every frontier pair of every layer at 1.25x-16x (trained and initial
# weights, MAC and parameter budgets): the best pair is fourth or fifth in HOSVD order, and still found
@pytest.mark.parametrize(
    "kernel, layer, ratio, by",
    [
        (_initial_kernel, "layer2.2.conv1", 2.0, "macs"),
        (_initial_kernel, "layer2.2.conv1", 4.0, "macs"),
        (_initial_kernel, "layer3.2.conv2", 16.0, "macs"),
        (_initial_kernel, "layer2.0.conv1", 5.0, "params"),
        (_trained_kernel, "layer3.0.conv1", 2.5, "params"),
    ],
)
def test_screening_finds_the_best_tucker2_pair(kernel, layer, ratio, by):
    screened, best = _screened_and_best(kernel(layer), layer, ratio, by)
    assert screened == best


def test_screening_can_miss_the_best_pair_by_little():
    """The one case of that search where the best pair is ninth in HOSVD order."""
    screened, best = _screened_and_best(_trained_kernel("layer3.0.conv1"), "layer3.0.conv1", 3.0, by="params")
    assert best <= screened <= best + 1e-3


def test_layer_errors_frame_reports_achieved_ratios():
    torch.manual_seed(6)
    df = analysis.layer_errors(_small_net(), macs_budgets=(2.0, 16.0), params_budgets=(3.0,), input_shape=(3, 16, 16))
    assert list(df.columns) == analysis.COLUMNS
    assert set(df["layer"]) == {"1", "2"} and set(df["format"]) == set(FORMATS)
    macs, params = df[df["by"] == "macs"], df[df["by"] == "params"]
    assert (macs["macs_ratio"] >= macs["budget"]).all() and (params["params_ratio"] >= params["budget"]).all()
    assert (df["rel_error"] > 0).all() and (df["fitted"] <= df["frontier"]).all()
    # a format has a row exactly where some configuration fits; matrix rank 1 of the 8 -> 12 stride-2
    # conv costs 84/864 of its MACs, so 16x is out of its reach
    geom = trace_convs(_small_net(), (3, 16, 16))["1"]
    reachable = [f for f in FORMATS if analysis.frontier(FORMATS[f], geom, geom.macs / 16)]
    assert "matrix" not in reachable and "tucker2" in reachable
    assert df[(df["layer"] == "1") & (df["budget"] == 16.0)]["format"].tolist() == reachable


CURVE = (1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 11.0, 16.0)


def test_curves_of_svd_formats_fall_as_cost_grows():
    torch.manual_seed(7)
    df = analysis.layer_errors(
        _small_net(), ["matrix", "spatial"], macs_budgets=CURVE, params_budgets=CURVE, input_shape=(3, 16, 16)
    )
    for (_, _, by), curve in df.groupby(["layer", "format", "by"]):
        errors = curve.sort_values(by)["rel_error"].to_numpy()
        assert len(errors) >= 6 and (np.diff(errors) <= 1e-12).all(), errors


def test_bad_input():
    w = torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match="must be > 1"):
        analysis.best_approximation(w, "tucker2", 1.0)
    with pytest.raises(ValueError, match="by must be"):
        analysis.best_approximation(w, "tucker2", 2.0, by="flops")
    with pytest.raises(ValueError, match="unknown low-rank format"):
        analysis.best_approximation(w, "tt", 2.0)
    with pytest.raises(ValueError, match="C_out, C_in"):
        analysis.approximation_error(torch.randn(4, 4), "tucker2", (2, 2))
    with pytest.raises(ValueError, match="another kernel"):
        analysis.best_approximation(w, "matrix", 2.0, fits=analysis.KernelFits(w, FORMATS["spatial"]))
