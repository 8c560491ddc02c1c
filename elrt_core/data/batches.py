"""Batch-level augmentation and a reproducible, shardable in-memory batch loader.

Everything is a tensor op on the device the images live on: no per-image PIL work, no worker
processes. Images stay uint8 NCHW until :func:`normalize` turns a batch into float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["BatchLoader", "normalize", "random_crop_flip"]

_Stats = Sequence[float] | torch.Tensor


def normalize(x_uint8: torch.Tensor, mean: _Stats, std: _Stats) -> torch.Tensor:
    """Scale uint8 images to [0, 1] and standardize each channel: ``(x / 255 - mean) / std``.

    Args:
        x_uint8: uint8 tensor (..., C, H, W), pixel values 0..255.
        mean: C per-channel means in [0, 1] units.
        std: C per-channel standard deviations in [0, 1] units.

    Returns:
        float32 tensor of the same shape, on the same device.
    """
    if x_uint8.dtype != torch.uint8:
        raise TypeError(f"normalize expects uint8 images, got {x_uint8.dtype}")
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=x_uint8.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=x_uint8.device).view(-1, 1, 1)
    return (x_uint8.float() / 255.0 - mean_t) / std_t


def _draw_crop_flip(
    n: int, padding: int, generator: torch.Generator, device: torch.device, flip: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image crop offsets ``top``, ``left`` (int64 (n,), in 0..2*padding) and ``flip`` (bool (n,)).

    Drawn in that order from ``generator``, which must be on ``device``.
    """
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    if flip:
        mirror = torch.rand(n, generator=generator, device=device) < 0.5
    else:
        mirror = torch.zeros(n, dtype=torch.bool, device=device)
    return top, left, mirror


def _crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, mirror: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad ``x`` (N, C, H, W) by ``padding``, crop image i at (top[i], left[i]) to H x W, and
    mirror it horizontally where mirror[i]. One gather over per-image row/column index grids."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = top[:, None] + torch.arange(h, device=x.device)  # (N, H) rows of the padded image
    cols = left[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(mirror[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(n, device=x.device)[:, None, None, None],
        torch.arange(c, device=x.device)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def random_crop_flip(x_uint8: torch.Tensor, generator: torch.Generator, padding: int = 4, *, flip: bool = True) -> torch.Tensor:
    """Standard CIFAR augmentation for a whole batch: random crop after zero padding, random h-flip.

    Each image is zero-padded by ``padding`` pixels on every side, a window of the original size is
    cut at a uniformly random offset (0..2*padding in each direction), and, if ``flip``, the window
    is mirrored left-right with probability 0.5. Offsets and flips are drawn independently per image.

    Args:
        x_uint8: uint8 tensor (N, C, H, W).
        generator: source of randomness; it must live on ``x_uint8.device`` (e.g.
            ``torch.Generator(device="cuda")`` for CUDA tensors), so no host-device transfer occurs.
        padding: zero padding in pixels, >= 0; 0 disables the crop.
        flip: whether to flip horizontally with probability 0.5.

    Returns:
        uint8 tensor (N, C, H, W) on the same device.
    """
    if x_uint8.dim() != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x_uint8.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    top, left, mirror = _draw_crop_flip(len(x_uint8), padding, generator, x_uint8.device, flip)
    return _crop_flip(x_uint8, top, left, mirror, padding)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose state depends only on (seed, epoch), both >= 0, with no collisions
    between nearby pairs (hashed through numpy's SeedSequence)."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class BatchLoader:
    """Iterate over ``(x, y)`` batches of an in-memory image data set, reproducibly per epoch.

    The images are moved to ``device`` once, as uint8. Each epoch, a CPU generator seeded from
    ``(seed, epoch)`` draws the permutation (if ``shuffle``) and then, per data set index, the crop
    offsets and flips (if ``augment``); these small tensors are moved to ``device`` once per epoch,
    and batches are then gathered, augmented and normalized on ``device``. So a given
    (seed, epoch) yields the same batches on every call, on every device, and a run resumed at
    epoch e (after ``set_epoch(e)``) sees the same data as an uninterrupted one. As with
    ``torch.utils.data.DistributedSampler``, call :meth:`set_epoch` before each epoch; otherwise
    every epoch repeats epoch 0.

    Distributed data parallel (``world_size > 1``): all ranks compute the same epoch order and
    rank r takes ``order[r::world_size]``. The order is first made a multiple of ``world_size``
    long so every rank gets the same number of samples and batches: with ``drop_last=False`` it is
    padded by repeating its first elements (a few samples are seen twice per epoch), with
    ``drop_last=True`` it is truncated (a few samples are skipped). ``batch_size`` is per rank.

    Evaluation: ``shuffle=False, augment=False`` (and ``world_size=1``) gives the data in order.

    Args:
        x: uint8 images (N, C, H, W), on any device.
        y: integer labels (N,); yielded as int64.
        batch_size: samples per batch (per rank).
        mean, std: per-channel statistics in [0, 1] units, passed to :func:`normalize`.
        shuffle: permute the samples each epoch.
        augment: apply :func:`random_crop_flip`-style crop (``padding``) and flip to each sample.
        seed: base seed, >= 0.
        drop_last: drop the last incomplete batch (and truncate instead of pad across ranks).
        device: where the data lives and the batches are produced.
        rank, world_size: this process's shard, 0 <= rank < world_size.
        padding: zero padding of the random crop, in pixels.

    Attributes:
        num_samples: samples per epoch on this rank (after padding or truncation).

    Yields:
        x: float32 (B, C, H, W) normalized images on ``device``; y: int64 (B,) on ``device``.
        B = batch_size except possibly for the last batch when ``drop_last=False``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        mean: _Stats,
        std: _Stats,
        shuffle: bool,
        augment: bool,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world_size: int = 1,
        padding: int = 4,
    ) -> None:
        if x.dtype != torch.uint8 or x.dim() != 4:
            raise ValueError(f"x must be uint8 (N, C, H, W), got {x.dtype} of shape {tuple(x.shape)}")
        if y.shape != (len(x),):
            raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        if seed < 0 or padding < 0:
            raise ValueError(f"seed and padding must be >= 0, got seed={seed}, padding={padding}")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device, torch.int64)
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.padding = padding
        self.epoch = 0
        n = len(x)
        self.num_samples = n // world_size if drop_last else -(-n // world_size)  # per rank

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (>= 0) whose order and augmentation the next iteration produces."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = epoch

    def __len__(self) -> int:
        """Number of batches per epoch on this rank."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def _shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's indices: ``order`` padded (wrapping) or truncated to a multiple of world_size."""
        total = self.num_samples * self.world_size
        if total > len(order):
            order = order.repeat(-(-total // len(order)))
        return order[:total][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        generator = _epoch_generator(self.seed, self.epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        indices = self._shard(order).to(self.device)
        if self.augment:
            top, left, mirror = (t.to(self.device) for t in _draw_crop_flip(n, self.padding, generator, torch.device("cpu")))
        for b in range(len(self)):
            idx = indices[b * self.batch_size : (b + 1) * self.batch_size]
            xb = self.x[idx]
            if self.augment:
                xb = _crop_flip(xb, top[idx], left[idx], mirror[idx], self.padding)
            yield normalize(xb, self.mean, self.std), self.y[idx]
