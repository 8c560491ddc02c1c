"""Orthogonality regularizers for low-rank factor matrices.

Reference: N. Bansal, X. Chen, Z. Wang, "Can We Gain More from Orthogonality Regularizations in
Training Deep CNNs?", NeurIPS 2018 (SO, DSO, MC, SRIP); ELRT (Sui et al. 2024) applies them to the
factor matrices of low-tensor-rank convolutions.

Conventions used by every function here (each returns a scalar tensor **without** the strength
lambda; :func:`penalty` applies lambda):

* ``A`` is a factor of shape ``(m, n)``, or a stack of equal-shape factors ``(b, m, n)``, for which
  the value of each is returned (shape ``(b,)``). Its **thin side** is ``t = min(m, n)``. The Gram matrix
  of the thin side is ``G = A A^T`` (``t x t``) when ``m <= n`` (a wide matrix, e.g. the output factor
  ``U2`` of shape ``(R2, C_out)``) and ``G = A^T A`` when ``m > n`` (a tall matrix). ``G = I`` exactly
  when the rows (wide) or columns (tall) of ``A`` are orthonormal, so SO, MC and SRIP are 0 then.
* ``per_rank=True`` divides the value by ``t`` (the rank): the 1/rank scaling that ELRT uses so
  that layers of different rank weigh alike.
* Every regularizer takes ``(a, *, per_rank, generator)``; only SRIP draws from ``generator``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = [
    "so",
    "dso",
    "mc",
    "srip",
    "penalty",
    "orthogonality",
    "frobenius_decay",
    "REGULARIZERS",
    "gram_thin",
    "ORTHOGONALITY_SEED",
]


def _check_matrix(a: torch.Tensor) -> None:
    if a.dim() not in (2, 3):
        raise ValueError(f"a factor must be a matrix (m, n) or a stack (b, m, n), got shape {tuple(a.shape)}")


def _mT(a: torch.Tensor) -> torch.Tensor:
    return a.transpose(-2, -1)


def _is_wide(a: torch.Tensor) -> bool:
    return a.shape[-2] <= a.shape[-1]


def gram_thin(a: torch.Tensor) -> torch.Tensor:
    """Gram matrix of the thin side of ``a``: shape ``(..., t, t)``, ``t = min(m, n)``."""
    _check_matrix(a)
    return a @ _mT(a) if _is_wide(a) else _mT(a) @ a


def _eye_like(g: torch.Tensor) -> torch.Tensor:
    return torch.eye(g.shape[-1], dtype=g.dtype, device=g.device)


def _sq_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of squares over the last two dims: ``(..., p, q) -> (...)``."""
    return (x**2).sum(dim=(-2, -1))


def _scale(value: torch.Tensor, a: torch.Tensor, per_rank: bool) -> torch.Tensor:
    return value / min(a.shape[-2:]) if per_rank else value


def so(a: torch.Tensor, *, per_rank: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Soft orthogonality: ``||G - I||_F^2`` with ``G`` the Gram matrix of the thin side of ``a``.

    Bansal et al. (2018), eq. (SO); 0 iff the thin side of ``a`` is orthonormal.
    """
    g = gram_thin(a)
    return _scale(_sq_sum(g - _eye_like(g)), a, per_rank)


def dso(a: torch.Tensor, *, per_rank: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Double soft orthogonality: ``||A^T A - I||_F^2 + ||A A^T - I||_F^2``.

    Bansal et al. (2018), eq. (DSO). Both Gram matrices are used, so for a non-square ``a`` with
    orthonormal thin side the value is ``max(m, n) - min(m, n)`` (the thick-side Gram is a
    projection, not the identity); it is 0 only for square orthogonal matrices.
    """
    _check_matrix(a)
    g1, g2 = _mT(a) @ a, a @ _mT(a)
    value = _sq_sum(g1 - _eye_like(g1)) + _sq_sum(g2 - _eye_like(g2))
    return _scale(value, a, per_rank)


def mc(
    a: torch.Tensor,
    *,
    normalize: bool = True,
    per_rank: bool = False,
    eps: float = 1e-12,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mutual coherence: ``max_ij |G - I|_ij`` on the thin side of ``a``.

    Bansal et al. (2018), eq. (MC), which states the loss ``||W^T W - I||_inf`` for a matrix with
    normalized columns. With ``normalize=True`` (default) the rows (wide ``a``) or columns (tall
    ``a``) are scaled to unit norm first, so the value is the largest absolute cosine between two of
    them (the mutual coherence; the diagonal of ``G - I`` is then 0). With ``normalize=False`` the
    raw ``max |G - I|`` is returned, which also penalizes vector norms.
    """
    _check_matrix(a)
    if normalize:
        a = a / a.norm(dim=-1 if _is_wide(a) else -2, keepdim=True).clamp_min(eps)
    g = gram_thin(a)
    return _scale((g - _eye_like(g)).abs().amax(dim=(-2, -1)), a, per_rank)


def srip(a: torch.Tensor, *, n_iter: int = 2, generator: torch.Generator | None = None, per_rank: bool = False) -> torch.Tensor:
    """Spectral restricted isometry: ``sigma_max(G - I)`` estimated by power iteration.

    Bansal et al. (2018), eq. (SRIP) and their implementation: starting from a random vector ``v``
    (drawn from ``generator``, so the value is deterministic under a seed), iterate
    ``v <- (G - I) v / ||(G - I) v||`` ``n_iter`` times and return ``||(G - I) v||``. The gradient
    flows through every iteration (no ``detach``), as in the reference. Because ``G - I`` is
    symmetric, its spectral norm is its largest absolute eigenvalue, which the iteration converges
    to as ``n_iter`` grows.
    """
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    g = gram_thin(a)
    d = g - _eye_like(g)
    v = torch.randn(*d.shape[:-1], 1, generator=generator, dtype=torch.float32).to(device=d.device, dtype=d.dtype)
    for _ in range(n_iter):
        v = d @ v
        v = v / torch.linalg.vector_norm(v, dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return _scale(torch.linalg.vector_norm(d @ v, dim=(-2, -1)), a, per_rank)


REGULARIZERS: dict[str, Callable[..., torch.Tensor]] = {"so": so, "dso": dso, "mc": mc, "srip": srip}


def penalty(
    model: nn.Module,
    reg: str,
    reg_weight: float,
    on: Iterable[str] = ("U2",),
    *,
    per_rank: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``reg_weight * sum`` of regularizer ``reg`` over the named factors of every low-rank layer.

    A low-rank layer is any module with a ``factors()`` method returning ``{name: 2-D tensor}``
    (see :mod:`elrt_core.lowrank`); ``on`` selects which factors (``"U1"``: input side,
    ``"U2"``: output side). ``reg="none"`` or ``reg_weight == 0`` gives a zero tensor. Every
    regularizer takes the same keywords; ``generator`` feeds SRIP's start vectors (one per factor,
    drawn group by group) and is unused by the others.
    """
    on = tuple(on)
    if reg != "none" and reg not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {reg!r}; allowed: none, {', '.join(REGULARIZERS)}")
    if reg_weight < 0:
        raise ValueError(f"regularization weight must be >= 0, got {reg_weight}")
    param = next(model.parameters(), None)
    zero = torch.zeros((), device=param.device if param is not None else None)
    if reg == "none" or reg_weight == 0:
        return zero
    fn = REGULARIZERS[reg]
    groups: dict[tuple, list[torch.Tensor]] = {}
    for module in model.modules():
        factors = getattr(module, "factors", None)
        if not callable(factors):
            continue
        named = factors()
        unknown = [f for f in on if f not in named]
        if unknown:
            raise ValueError(f"{type(module).__name__} has factors {sorted(named)}, not {unknown}")
        for f in on:
            a = named[f]
            groups.setdefault((tuple(a.shape), a.dtype, a.device), []).append(a)
    # Factors of equal shape are stacked and regularized in one batched call: the same sum, with one
    # set of kernel launches per shape instead of per layer.
    total = zero
    for stack in groups.values():
        values = fn(torch.stack(stack) if len(stack) > 1 else stack[0], per_rank=per_rank, generator=generator)
        total = total + values.sum()
    return reg_weight * total


ORTHOGONALITY_SEED = 0
"""Seed of SRIP's start vectors when :func:`orthogonality` measures (never the training generator)."""


@torch.no_grad()
def orthogonality(model: nn.Module) -> dict[str, dict[str, float]]:
    """How orthogonal the factors of ``model`` are: per factor set (``"U1"``, ``"U2"``) of its low-rank
    layers, the unweighted penalties (lambda = 1) summed over layers, as a run with that regularizer
    would add them before lambda: ``so``, ``so_per_rank`` (ELRT's 1/rank scaling), ``srip`` (start
    vectors seeded :data:`ORTHOGONALITY_SEED`, so the measurement never touches a run's random
    streams) and ``mc``; ``sq_norm``, the mean over layers of ``||A||_F^2 / t`` (the mean squared norm
    of a thin-side vector: 1 for orthonormal factors); and ``layers``, the number of layers.

    Logged every epoch by every low-rank run, regularized or not (:mod:`elrt_core.train.loop`), so the
    orthogonality each method reaches can be compared. ``{}`` for a model without low-rank layers.
    """
    generator = torch.Generator().manual_seed(ORTHOGONALITY_SEED)
    by_name: dict[str, list[torch.Tensor]] = {}
    for module in model.modules():
        factors = getattr(module, "factors", None)
        if callable(factors):
            for name, a in factors().items():
                by_name.setdefault(name, []).append(a.detach().float())
    out: dict[str, dict[str, float]] = {}
    for name, mats in sorted(by_name.items()):
        so_values = [so(a) for a in mats]
        out[name] = {
            "so": float(sum(so_values)),
            "so_per_rank": float(sum(v / min(a.shape) for v, a in zip(so_values, mats, strict=True))),
            "srip": float(sum(srip(a, generator=generator) for a in mats)),
            "mc": float(sum(mc(a) for a in mats)),
            "sq_norm": float(sum(_sq_sum(a) / min(a.shape) for a in mats) / len(mats)),
            "layers": len(mats),
        }
    return out


def frobenius_decay(model: nn.Module, weight_decay: float) -> torch.Tensor:
    """``weight_decay / 2 * sum ||K||_F^2`` over the reconstructed kernels ``K`` of the low-rank layers
    of ``model`` (any module with ``factors()`` and ``kernel()``): weight decay on the product rather
    than on each factor (Khodak et al., *Initialization and Regularization of Factorized Neural
    Layers*, ICLR 2021, Sec. 3). Its gradient on ``K`` is ``weight_decay * K``, SGD weight decay's on a
    dense kernel."""
    kernels = [
        m.kernel() for m in model.modules() if callable(getattr(m, "factors", None)) and callable(getattr(m, "kernel", None))
    ]
    if not kernels:
        param = next(model.parameters(), None)
        return torch.zeros((), device=param.device if param is not None else None)
    return 0.5 * weight_decay * sum((k**2).sum() for k in kernels)
