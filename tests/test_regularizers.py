"""Orthogonality regularizers: zeros, naive references, gradients, determinism, penalty()."""

import numpy as np
import pytest
import torch

from elrt_core import lowrank, models, regularizers
from elrt_core.regularizers import REGULARIZERS, dso, mc, penalty, so, srip


def _orthonormal(m, n, seed=0):
    q, _ = torch.linalg.qr(torch.randn(max(m, n), min(m, n), generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q if m >= n else q.T  # tall: orthonormal columns; wide: orthonormal rows


@pytest.mark.parametrize("shape", [(8, 3), (3, 8), (5, 5)])
@pytest.mark.parametrize("fn", [so, mc, srip])
def test_zero_on_orthonormal(fn, shape):
    assert fn(_orthonormal(*shape)).item() == pytest.approx(0.0, abs=1e-10)


def test_dso_zero_only_for_square_orthogonal():
    assert dso(_orthonormal(6, 6)).item() == pytest.approx(0.0, abs=1e-10)
    # thick-side Gram is a rank-3 projection in R^8: ||P - I||_F^2 = 8 - 3
    assert dso(_orthonormal(3, 8)).item() == pytest.approx(5.0, abs=1e-9)


def _naive_gram_thin(a):
    a = a.numpy()
    return a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a


@pytest.mark.parametrize("shape", [(7, 4), (4, 7)])
def test_match_naive_references(shape):
    a = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    g = _naive_gram_thin(a)
    eye = np.eye(g.shape[0])
    an = a.numpy()
    assert so(a).item() == pytest.approx(np.sum((g - eye) ** 2))
    assert dso(a).item() == pytest.approx(
        np.sum((an.T @ an - np.eye(shape[1])) ** 2) + np.sum((an @ an.T - np.eye(shape[0])) ** 2)
    )
    assert mc(a, normalize=False).item() == pytest.approx(np.max(np.abs(g - eye)))
    axis = 1 if shape[0] <= shape[1] else 0
    an_n = an / np.linalg.norm(an, axis=axis, keepdims=True)
    gn = an_n @ an_n.T if shape[0] <= shape[1] else an_n.T @ an_n
    assert mc(a).item() == pytest.approx(np.max(np.abs(gn - eye)))
    assert srip(a, n_iter=200).item() == pytest.approx(np.linalg.norm(g - eye, 2), rel=1e-6)
    assert so(a, per_rank=True).item() == pytest.approx(np.sum((g - eye) ** 2) / min(shape))


def test_srip_few_iterations_is_a_lower_bound_and_deterministic():
    a = torch.randn(6, 20, generator=torch.Generator().manual_seed(2))
    exact = torch.linalg.matrix_norm(a @ a.T - torch.eye(6), ord=2).item()
    v1 = srip(a, generator=torch.Generator().manual_seed(3)).item()
    v2 = srip(a, generator=torch.Generator().manual_seed(3)).item()
    v3 = srip(a, generator=torch.Generator().manual_seed(4)).item()
    assert v1 == v2 and v1 <= exact + 1e-5 and v1 != v3


@pytest.mark.parametrize("name", list(REGULARIZERS))
def test_finite_gradients(name):
    a = torch.randn(5, 12, requires_grad=True)
    REGULARIZERS[name](a).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_srip_gradient_flows_through_power_iteration():
    """The reference lets the gradient flow through the iteration: it differs from a detached v."""
    a = torch.randn(5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(7), requires_grad=True)
    srip(a, n_iter=2, generator=torch.Generator().manual_seed(0)).backward()
    full = a.grad.clone()
    a.grad = None
    g = a @ a.T - torch.eye(5, dtype=torch.float64)
    v = torch.randn(5, 1, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        for _ in range(2):
            v = g @ v
            v = v / v.norm()
    (g @ v).norm().backward()
    assert not torch.allclose(full, a.grad)


def test_penalty_sums_over_low_rank_layers():
    m = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=2, init="scratch")
    layers = [mod for mod in m.modules() if isinstance(mod, lowrank.LowRankConv2d)]
    expect = sum(so(l.factors()["U2"]) for l in layers)
    assert penalty(m, "so", 0.5).item() == pytest.approx(0.5 * expect.item(), rel=1e-6)
    both = sum(so(l.factors()["U1"]) + so(l.factors()["U2"]) for l in layers)
    assert penalty(m, "so", 1.0, on=("U1", "U2")).item() == pytest.approx(both.item(), rel=1e-6)
    assert penalty(m, "none", 1.0).item() == 0.0
    assert penalty(models.get("resnet20"), "so", 1.0).item() == 0.0  # a dense model has no factors


@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (5, 5)])
@pytest.mark.parametrize("name", ["so", "dso", "mc"])
def test_stacked_factors_give_each_factor_value(name, shape):
    fn = REGULARIZERS[name]
    stack = torch.randn(3, *shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    values = fn(stack, per_rank=True)
    assert values.shape == (3,)
    assert torch.allclose(values, torch.stack([fn(a, per_rank=True) for a in stack]))


def test_stacked_srip_converges_to_each_spectral_norm():
    stack = torch.randn(4, 6, 15, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    exact = torch.stack([torch.linalg.matrix_norm(a @ a.T - torch.eye(6, dtype=a.dtype), ord=2) for a in stack])
    assert torch.allclose(srip(stack, n_iter=300, generator=torch.Generator().manual_seed(0)), exact, rtol=1e-6)


@pytest.mark.parametrize("name", ["so", "dso", "mc"])
def test_grouped_penalty_matches_per_layer_sum_and_gradient(name):
    """penalty() stacks equal-shape factors; value and gradient equal the per-layer loop's."""
    torch.manual_seed(0)
    m = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=3, init="scratch")
    layers = [mod for mod in m.modules() if isinstance(mod, lowrank.LowRankConv2d)]
    assert len({tuple(l.factors()["U2"].shape) for l in layers}) < len(layers)  # some stacking happens
    fn = REGULARIZERS[name]
    naive = sum(fn(l.factors()[f]) for l in layers for f in ("U1", "U2"))
    naive_grads = torch.autograd.grad(naive, list(m.parameters()), allow_unused=True)
    grouped = penalty(m, name, 1.0, on=("U1", "U2"))
    grouped_grads = torch.autograd.grad(grouped, list(m.parameters()), allow_unused=True)
    assert grouped.item() == pytest.approx(naive.item(), rel=1e-5)
    for gn, gg in zip(naive_grads, grouped_grads):
        assert (gn is None) == (gg is None)
        if gn is not None:
            assert torch.allclose(gn, gg, rtol=1e-4, atol=1e-7)


def test_penalty_bad_input():
    m = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=2, init="scratch")
    with pytest.raises(ValueError, match="unknown regularizer 'ortho'"):
        penalty(m, "ortho", 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        penalty(m, "so", -1.0)
    with pytest.raises(ValueError, match="U3"):
        penalty(m, "so", 1.0, on=("U3",))
    with pytest.raises(ValueError, match=r"matrix \(m, n\) or a stack"):
        so(torch.randn(2, 3, 3, 3))


@pytest.mark.parametrize("shape", [(3, 8), (8, 3), (5, 5), (16, 64)])
def test_dso_is_twice_so_plus_a_constant(shape):
    """tr((A^T A)^2) = tr((A A^T)^2), so DSO = 2 SO + |m - n| for every A, and their gradients agree
    up to the factor 2 (the methods page states the proof)."""
    torch.manual_seed(sum(shape))
    a = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    d, s = dso(a), so(a)
    assert d.item() == pytest.approx(2 * s.item() + abs(shape[0] - shape[1]), rel=1e-12)
    (gd,) = torch.autograd.grad(d, a)
    (gs,) = torch.autograd.grad(so(a), a)
    assert torch.allclose(gd, 2 * gs, rtol=1e-10, atol=1e-12)


def test_orthogonality_is_zero_for_orthonormal_factors_and_measures_every_factor_set():
    m = lowrank.convert(models.get("resnet20"), "tucker2", flops_ratio=2, init="scratch")
    before = regularizers.orthogonality(m)
    assert set(before) == {"U1", "U2"} and before["U2"]["layers"] == 18
    assert before["U2"]["so"] == pytest.approx(regularizers.penalty(m, "so", 1.0, ("U2",)).item(), rel=1e-5)
    assert before["U1"]["so_per_rank"] == pytest.approx(
        regularizers.penalty(m, "so", 1.0, ("U1",), per_rank=True).item(), rel=1e-5
    )
    for layer in m.modules():
        if isinstance(layer, lowrank.Tucker2Conv2d):
            for w in layer.factor_weights().values():
                torch.nn.init.orthogonal_(w)
    after = regularizers.orthogonality(m)
    for name in ("U1", "U2"):
        for key in ("so", "so_per_rank", "srip", "mc"):
            assert after[name][key] == pytest.approx(0, abs=1e-3), (name, key)
        assert after[name]["sq_norm"] == pytest.approx(1, abs=1e-4)
    assert regularizers.orthogonality(models.get("resnet20")) == {}
    # the measurement never draws from the global random stream a run trains with
    torch.manual_seed(1)
    regularizers.orthogonality(m)
    drawn_after = torch.rand(3)
    torch.manual_seed(1)
    assert torch.equal(drawn_after, torch.rand(3))


def test_frobenius_decay_is_weight_decay_on_the_reconstructed_kernel():
    layer = lowrank.Tucker2Conv2d(8, 6, 3, ranks=(4, 3), padding=1)
    net = torch.nn.Sequential(layer)
    value = regularizers.frobenius_decay(net, 0.1)
    kernel = layer.kernel()
    assert value.item() == pytest.approx(0.05 * (kernel**2).sum().item(), rel=1e-6)
    (grad_u2,) = torch.autograd.grad(value, layer.last.weight)
    (expected,) = torch.autograd.grad(kernel, layer.last.weight, grad_outputs=0.1 * kernel.detach())
    assert torch.allclose(grad_u2, expected, atol=1e-6)
    assert regularizers.frobenius_decay(models.get("resnet20"), 0.1).item() == 0
