"""Seeded class-balanced subsets of a labelled data set."""

from __future__ import annotations

import torch

__all__ = ["class_balanced_subset", "train_val_split", "VALIDATION_SEED"]


def class_balanced_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Pick ``n`` indices with the classes as balanced as possible, reproducibly.

    The C classes are the distinct values in ``labels``. Each class gets ``n // C`` examples and
    the ``n % C`` lowest class ids one more; within a class the examples are a uniformly random
    choice drawn from a CPU ``torch.Generator`` seeded with ``seed``.

    Args:
        labels: integer tensor (N,) of class ids, on any device.
        n: subset size, 1 <= n <= N.
        seed: random seed; the same (labels, n, seed) always gives the same subset.

    Returns:
        int64 CPU tensor (n,) of indices into ``labels``, sorted ascending.

    Raises:
        ValueError: ``labels`` is not a 1-D integer tensor, ``n`` is out of range, or a class has
            fewer examples than its share.
    """
    if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} of shape {tuple(labels.shape)}")
    if not 0 < n <= len(labels):
        raise ValueError(f"subset size n={n} must be between 1 and the number of labels ({len(labels)})")
    labels = labels.cpu()
    classes = torch.unique(labels)  # sorted ascending
    per_class, remainder = divmod(n, len(classes))
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for i, c in enumerate(classes.tolist()):
        members = torch.nonzero(labels == c).flatten()
        share = per_class + (1 if i < remainder else 0)
        if share > len(members):
            raise ValueError(f"class {c} has {len(members)} examples, fewer than its share {share} of n={n}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:share]])
    return torch.cat(chosen).sort().values


VALIDATION_SEED = 20240118
"""Seed of the validation split: one fixed held-out set for every run, whatever the run's seed (the
digits are the date of the ELRT preprint, arXiv 2401.10341 v1)."""


def train_val_split(labels: torch.Tensor, val_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out ``val_size`` class-balanced examples as a validation split.

    The split is :func:`class_balanced_subset` with :data:`VALIDATION_SEED`, so it is the same for
    every run on the same labels; the training part is every other index.

    Args:
        labels: integer tensor (N,) of class ids.
        val_size: examples held out, 0 <= val_size < N (0: no validation split).

    Returns:
        ``(train_idx, val_idx)``: int64 CPU tensors, sorted ascending, disjoint, together all of 0..N-1.
    """
    if not 0 <= val_size < len(labels):
        raise ValueError(f"val_size={val_size} must be between 0 and {len(labels) - 1} (the number of labels minus one)")
    if val_size == 0:
        return torch.arange(len(labels)), torch.zeros(0, dtype=torch.int64)
    val_idx = class_balanced_subset(labels, val_size, VALIDATION_SEED)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val_idx] = False
    return torch.nonzero(keep).flatten(), val_idx
