"""Low-rank layers: equivalence with dense convs, initialization, cost formulas, bad input."""

import math

import pytest
import torch
from torch import nn

from elrt_core import cost
from elrt_core.lowrank import FORMATS, CPConv2d, MatrixConv2d, SpatialConv2d, Tucker2Conv2d

EXACT_FORMATS = ["tucker2", "matrix", "spatial"]  # exact at full rank; CP-ALS is an iterative fit


def _full(cls, conv):
    return cls.max_ranks(conv.in_channels, conv.out_channels, conv.kernel_size)


@pytest.mark.parametrize("fmt", EXACT_FORMATS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_from_dense_full_rank_reproduces_dense_conv(fmt, stride, padding, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 3, stride=stride, padding=padding, bias=bias)
    cls = FORMATS[fmt]
    layer = cls.from_dense(conv, _full(cls, conv))
    x = torch.randn(2, 6, 11, 11)
    assert (layer(x) - conv(x)).abs().max().item() < 1e-4


@pytest.mark.parametrize("fmt", EXACT_FORMATS)
def test_from_dense_non_square_kernel_dilation(fmt):
    torch.manual_seed(1)
    conv = nn.Conv2d(5, 7, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=True)
    cls = FORMATS[fmt]
    layer = cls.from_dense(conv, _full(cls, conv))
    x = torch.randn(2, 5, 13, 12)
    assert layer(x).shape == conv(x).shape
    assert (layer(x) - conv(x)).abs().max().item() < 1e-4


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("stride,padding,kernel", [(1, 1, 3), (2, 1, 3), (2, 0, (3, 1)), (1, 2, (5, 3))])
def test_to_dense_reproduces_random_layer(fmt, stride, padding, kernel):
    torch.manual_seed(2)
    cls = FORMATS[fmt]
    kernel_pair = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    full = cls.max_ranks(8, 12, kernel_pair)
    ranks = tuple(max(1, f // 2) for f in full)
    layer = cls(8, 12, kernel, ranks, stride=stride, padding=padding, bias=True)
    nn.init.normal_(layer.convs()[-1].bias)
    dense = layer.to_dense()
    x = torch.randn(3, 8, 10, 9)
    assert isinstance(dense, nn.Conv2d)
    assert (layer(x) - dense(x)).abs().max().item() < 1e-4


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_kernel_matches_the_chain(fmt):
    """kernel() is the dense weight the chain applies: conv2d with it equals forward."""
    torch.manual_seed(3)
    cls = FORMATS[fmt]
    layer = cls(4, 6, 3, tuple(2 for _ in cls.rank_names), padding=1, bias=False)
    x = torch.randn(1, 4, 7, 7)
    assert torch.allclose(layer(x), torch.nn.functional.conv2d(x, layer.kernel(), padding=1), atol=1e-5)


def test_cp_from_dense_fits_a_cp_kernel_exactly():
    torch.manual_seed(4)
    src = CPConv2d(6, 8, 3, 3, padding=1, bias=False)
    conv = src.to_dense()
    fit = CPConv2d.from_dense(conv, 3)
    err = ((fit.kernel() - conv.weight) ** 2).sum() / (conv.weight**2).sum()
    assert err.item() < 1e-6


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_scratch_init_has_kaiming_variance(fmt):
    """The reconstructed kernel has Var = 2 / fan_in whatever the ranks (see layers docstring)."""
    torch.manual_seed(5)
    cls = FORMATS[fmt]
    c_in, c_out, k = 64, 64, 3
    full = cls.max_ranks(c_in, c_out, (k, k))
    target = 2.0 / (c_in * k * k)
    for frac in (0.25, 0.5):
        ranks = tuple(max(1, int(frac * min(f, 64))) for f in full)
        variances = [cls(c_in, c_out, k, ranks).kernel().var().item() for _ in range(40)]
        mean_var = sum(variances) / len(variances)
        assert abs(mean_var / target - 1) < 0.15, (fmt, ranks, mean_var, target)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("stride", [1, 2])
def test_cost_formula_matches_counted_cost(fmt, stride):
    cls = FORMATS[fmt]
    conv = nn.Conv2d(12, 20, 3, stride=stride, padding=1, bias=True)
    geom = cost.ConvGeometry.of(conv, (15, 17))
    full = cls.max_ranks(12, 20, (3, 3))
    ranks = tuple(max(1, f // 3) for f in full)
    layer = cls(12, 20, 3, ranks, stride=stride, padding=1, bias=True)
    counted = cost.count(layer, (12, 15, 17))
    assert cls.cost(geom, ranks) == (counted.macs, counted.params)


def test_tucker2_cost_equals_paper_formula():
    """params C_in R1 + R1 R2 k^2 + R2 C_out; MACs H W C_in R1 + H' W' (R1 R2 k^2 + R2 C_out)."""
    c_in, c_out, r1, r2, k, h = 16, 32, 5, 9, 3, 16
    layer = Tucker2Conv2d(c_in, c_out, k, (r1, r2), stride=2, padding=1, bias=False)
    got = cost.count(layer, (c_in, h, h))
    ho = h // 2
    assert got.params == c_in * r1 + r1 * r2 * k * k + r2 * c_out
    assert got.macs == h * h * c_in * r1 + ho * ho * (r1 * r2 * k * k + r2 * c_out)


def test_matrix_cost_equals_paper_formula():
    """params r (C_in k^2 + C_out); MACs H' W' r (C_in k^2 + C_out)."""
    c_in, c_out, r, k, h = 16, 32, 7, 3, 8
    layer = MatrixConv2d(c_in, c_out, k, r, padding=1, bias=False)
    got = cost.count(layer, (c_in, h, h))
    assert got.params == r * (c_in * k * k + c_out)
    assert got.macs == h * h * r * (c_in * k * k + c_out)


def test_factors_shapes_and_orientation():
    t = Tucker2Conv2d(16, 32, 3, (4, 8))
    f = t.factors()
    assert f["U1"].shape == (4, 16) and f["U2"].shape == (8, 32)
    m = MatrixConv2d(16, 32, 3, 5).factors()
    assert m["U1"].shape == (5, 16 * 9) and m["U2"].shape == (5, 32)
    s = SpatialConv2d(16, 32, 3, 6).factors()
    assert s["U1"].shape == (6, 16 * 3) and s["U2"].shape == (6, 32 * 3)
    c = CPConv2d(16, 32, 3, 10).factors()
    assert c["U1"].shape == (10, 16) and c["U2"].shape == (10, 32)


def test_tucker2_from_dense_output_factor_is_orthonormal():
    conv = nn.Conv2d(16, 32, 3, padding=1)
    u2 = Tucker2Conv2d.from_dense(conv, (8, 12)).factors()["U2"]
    assert torch.allclose(u2 @ u2.T, torch.eye(12), atol=1e-5)


def test_from_dense_ranks_order_is_input_then_output():
    conv = nn.Conv2d(16, 32, 3)
    layer = Tucker2Conv2d.from_dense(conv, ranks=(5, 11))
    assert layer.first.out_channels == 5 and layer.core.out_channels == 11


@pytest.mark.parametrize(
    "cls,ranks",
    [
        (Tucker2Conv2d, (0, 4)),
        (Tucker2Conv2d, (4, 33)),
        (Tucker2Conv2d, 4),
        (MatrixConv2d, 0),
        (MatrixConv2d, 33),
        (SpatialConv2d, 97),
        (CPConv2d, -1),
        (MatrixConv2d, 2.5),
    ],
)
def test_bad_ranks_raise_value_error_naming_allowed_range(cls, ranks):
    with pytest.raises(ValueError) as e:
        cls(16, 32, 3, ranks)
    assert repr(ranks) in str(e.value) and "allowed" in str(e.value) and "1.." in str(e.value)


def test_grouped_conv_has_no_low_rank_form():
    with pytest.raises(ValueError, match="groups=4"):
        Tucker2Conv2d.from_dense(nn.Conv2d(8, 8, 3, groups=4), (2, 2))


def test_rank_ladder_cost_strictly_increases_and_ends_at_full_rank():
    geom = cost.ConvGeometry.of(nn.Conv2d(16, 64, 3, padding=1), (8, 8))
    for cls in FORMATS.values():
        n = cls.n_steps(16, 64, (3, 3))
        costs = [cls.cost(geom, cls.rank_at(16, 64, (3, 3), s))[0] for s in range(1, n + 1)]
        assert all(a < b for a, b in zip(costs, costs[1:])), cls.__name__
        assert cls.rank_at(16, 64, (3, 3), n) == cls.max_ranks(16, 64, (3, 3))


def test_gradients_flow_to_all_factors():
    layer = Tucker2Conv2d(4, 6, 3, (2, 3), padding=1)
    layer(torch.randn(2, 4, 5, 5)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_cp_max_rank_is_generic_bound():
    assert CPConv2d.max_ranks(16, 16, (3, 3)) == (math.prod([16, 16, 3, 3]) // 16,)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (2, 0)])
def test_every_impl_computes_the_same_function_and_gradients(fmt, stride, padding):
    torch.manual_seed(6)
    cls = FORMATS[fmt]
    layer = cls(6, 10, 3, tuple(3 for _ in cls.rank_names), stride=stride, padding=padding, bias=True).double()
    nn.init.normal_(layer.convs()[-1].bias)
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64)
    reference = layer(x)
    grads = torch.autograd.grad(reference.square().sum(), list(layer.parameters()))
    assert len(cls.IMPLS) >= 2
    for impl in cls.IMPLS[1:]:
        layer.set_impl(impl)
        out = layer(x)
        assert torch.allclose(out, reference, atol=1e-10), impl
        for g, r in zip(torch.autograd.grad(out.square().sum(), list(layer.parameters())), grads):
            assert torch.allclose(g, r, atol=1e-9), impl
    with pytest.raises(ValueError, match="unknown impl 'fast'"):
        layer.set_impl("fast")


def test_autotune_keeps_the_function_and_the_cost_count():
    from elrt_core import lowrank, models

    torch.manual_seed(7)
    m = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=2, init="scratch").eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        before = m(x)
    macs = cost.count(m).macs
    chosen = lowrank.autotune(m, x, repeats=1)
    assert len(chosen) == 18 and all(impl in Tucker2Conv2d.IMPLS for impl, _ in chosen.values())
    assert all(set(t) == set(Tucker2Conv2d.IMPLS) for _, t in chosen.values())
    m.eval()
    with torch.no_grad():
        assert torch.allclose(m(x), before, atol=1e-4)
    assert cost.count(m).macs == macs  # counted in the factored form whatever the impl
    assert all(p.grad is None for p in m.parameters())


def test_best_fit_decomposes_with_single_threaded_blas(monkeypatch):
    """Decompositions of small kernels run with one BLAS thread (threads only oversubscribe the cores)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []
    real = Tucker2Conv2d.decompose.__func__

    def spy(cls, weight, ranks, **kw):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return real(cls, weight, ranks, **kw)

    monkeypatch.setattr(Tucker2Conv2d, "decompose", classmethod(spy))
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    with threadpool_limits(limits=2, user_api="blas"):  # two BLAS threads around it, whatever the test run set
        Tucker2Conv2d.from_dense(conv, ranks=(4, 4))
    assert seen == [{1}]


# ---- Tucker-2 fit: HOSVD, then HOOI sweeps only while they pay ----------------------------------------
def _decaying_kernel(c_out, c_in, k=3, seed=0, decay=0.3):
    """A kernel whose channel-mode spectra decay like a trained network's: i.i.d. normal entries mixed
    by random rotations scaled by ``i ** -decay`` on both channel modes (HOOI gains 0.01-0.02 on it)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def mix(n):
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        return q * (np.arange(1, n + 1) ** -decay)

    return np.einsum("oihw,po,qi->pqhw", rng.standard_normal((c_out, c_in, k, k)), mix(c_out), mix(c_in))


@pytest.mark.parametrize("shape,ranks", [((64, 64), (16, 16)), ((64, 64), (32, 32)), ((64, 32), (16, 24))])
def test_tucker2_fit_is_within_a_thousandth_of_full_hooi(shape, ranks):
    """The stopped HOOI fit is as good as 100 sweeps of tensorly's HOOI to 1e-3 in relative error, and
    its sweeps did pay: they lowered the error by more than 5e-3 below the HOSVD."""
    import warnings

    import numpy as np
    from tensorly.decomposition import partial_tucker
    from threadpoolctl import threadpool_limits

    from elrt_core.lowrank.tucker import tucker2

    w = _decaying_kernel(*shape)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):  # threads only slow small matrices
        warnings.simplefilter("ignore")
        fit = tucker2(w, ranks)
        (core, (u_out, u_in)), _ = partial_tucker(
            w, rank=[ranks[1], ranks[0]], modes=[0, 1], init="svd", n_iter_max=100, tol=1e-10
        )
    full = np.linalg.norm(w - np.einsum("srhw,os,ir->oihw", core, u_out, u_in)) / np.linalg.norm(w)
    direct = np.linalg.norm(w - fit.reconstruct()) / np.linalg.norm(w)
    assert direct == pytest.approx(fit.errors[-1], abs=1e-9)
    assert full - 1e-9 <= direct <= full + 1e-3
    assert fit.errors[0] - direct > 5e-3 and 1 <= fit.sweeps < 100
    assert all(a >= b - 1e-12 for a, b in zip(fit.errors, fit.errors[1:]))  # HOOI never raises the error


def test_tucker2_fit_runs_no_sweep_where_hosvd_is_optimal():
    """1x1 kernel: the truncated SVD of rank min(R1, R2); a full input rank: the truncated SVD of the
    mode-0 unfolding (Eckart-Young errors), with no HOOI sweep."""
    import numpy as np

    from elrt_core.lowrank.tucker import tucker2

    def svd_error(matrix, r):
        s = np.linalg.svd(matrix, compute_uv=False)
        return np.sqrt((s[r:] ** 2).sum() / (s**2).sum())

    w = _decaying_kernel(24, 16, k=1, seed=1)
    fit = tucker2(w, (5, 9))
    assert fit.sweeps == 0 and fit.errors[0] == pytest.approx(svd_error(w[:, :, 0, 0], 5), abs=1e-10)
    w = _decaying_kernel(24, 16, seed=2)
    fit = tucker2(w, (16, 7))
    assert fit.sweeps == 0 and fit.errors[0] == pytest.approx(svd_error(w.reshape(24, -1), 7), abs=1e-10)


@pytest.mark.parametrize(
    "conv,ranks",
    [
        (nn.Conv2d(8, 32, 1), (6, 30)),
        (nn.Conv2d(8, 32, 1), (8, 32)),
        (nn.Conv2d(16, 8, 3, padding=1), (16, 3)),
        (nn.Conv2d(4, 40, 3), (4, 39)),
    ],
)
def test_tucker2_from_dense_warns_nothing_for_1x1_and_full_rank_modes(conv, ranks):
    """Ranks above an unfolding's column count (1x1 kernels) or full ranks: a complete basis, no warning
    (tensorly's HOOI warned about n_eigenvecs here and completed the factors randomly)."""
    import warnings

    torch.manual_seed(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = Tucker2Conv2d.from_dense(conv, ranks)
    f = layer.factors()
    assert torch.allclose(f["U1"] @ f["U1"].T, torch.eye(ranks[0]), atol=1e-5)
    assert torch.allclose(f["U2"] @ f["U2"].T, torch.eye(ranks[1]), atol=1e-5)
    if ranks == (8, 32):  # full rank: exact
        x = torch.randn(2, 8, 5, 5)
        assert (layer(x) - conv(x)).abs().max().item() < 1e-5


# ---- batch norm folded into the last factor ---------------------------------------------------------
def _random_bn_statistics(model):
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        nn.init.uniform_(bn.running_var, 0.5, 2.0)
        nn.init.normal_(bn.running_mean)
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
    return model


@pytest.mark.parametrize("name,fmt", [("resnet20", "dense"), ("resnet20", "tucker2"), ("resnet20", "cp"), ("vgg16", "matrix")])
def test_fold_batchnorm_gives_the_same_outputs_without_batch_norms(name, fmt):
    from elrt_core import lowrank, models

    torch.manual_seed(9)
    model = _random_bn_statistics(models.get(name))
    if fmt != "dense":
        model = lowrank.convert(model, fmt, flops_ratio=2, init="scratch")
    model.train()
    folded = lowrank.fold_batchnorm(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn > 0 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert model.training and not folded.training  # the input keeps its mode; the copy is for inference
    assert cost.count(folded).macs == cost.count(model).macs
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = model.eval()(x)
        assert torch.allclose(folded(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        if fmt == "tucker2":  # every computation of a low-rank layer uses the folded last factor
            for impl in Tucker2Conv2d.IMPLS:
                lowrank.set_impl(folded, impl)
                assert torch.allclose(folded(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item()), impl


def test_fold_batchnorm_leaves_a_batch_norm_whose_conv_output_is_shared():
    from elrt_core.lowrank import fold

    class Fork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.conv2, self.bn2 = (
                nn.Conv2d(3, 4, 3),
                nn.BatchNorm2d(4),
                nn.Conv2d(4, 4, 1),
                nn.BatchNorm2d(4),
            )

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y + self.bn2(self.conv2(y))

    torch.manual_seed(10)
    net = _random_bn_statistics(Fork()).eval()
    assert fold.conv_bn_pairs(net) == [("conv2", "bn2")]
    folded = fold.fold_batchnorm(net)
    assert isinstance(folded.bn, nn.BatchNorm2d) and isinstance(folded.bn2, nn.Identity)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-5)
