"""DistributedDataParallel setup under ``torchrun`` (NCCL on GPU, gloo on CPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "setup", "teardown", "all_reduce_sum", "replicas_agree"]


@dataclass(frozen=True)
class DistContext:
    """Process-group facts: ``rank``, ``world_size``, ``local_rank``; ``enabled`` under torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> DistContext:
    """Join the process group described by torchrun's environment (``WORLD_SIZE`` > 1), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(ctx: DistContext, values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over processes (a no-op in a single process)."""
    if ctx.enabled:
        values = values.clone()
        dist.all_reduce(values)
    return values


def replicas_agree(ctx: DistContext, model: torch.nn.Module, rtol: float = 1e-6) -> bool:
    """Whether every process holds the same parameters (compares a float64 checksum pair)."""
    if not ctx.enabled:
        return True
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    local = torch.stack([flat.sum(), (flat**2).sum()]).to(next(model.parameters()).device)
    gathered = [torch.zeros_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    return all(torch.allclose(g, gathered[0], rtol=rtol, atol=0) for g in gathered)
