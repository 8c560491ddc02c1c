"""What a training step holds in memory: the tensors autograd keeps for backward, the peak of a whole
step (resident memory on the CPU, the CUDA allocator's peak on a GPU), and the parameter, gradient and
optimizer-state bytes. All in bytes."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..lowrank.recompute import Recomputing, kept_tensors, recomputing
from ..timing import sync

__all__ = ["activation_bytes", "peak_step_bytes", "state_bytes"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the activation tensors autograd keeps for backward in one training forward pass of
    ``x`` (``(N, C, H, W)``), as training runs it: within :func:`elrt_core.lowrank.recomputing`, so a
    tensor a low-rank layer rebuilds in backward counts as what its recipe keeps. Each storage is
    counted once; parameters are not counted."""
    seen: dict[int, int] = {}
    context = recomputing(model)
    inner = context if isinstance(context, Recomputing) else None

    def pack(t: torch.Tensor):
        packed = inner.pack(t) if inner is not None else t
        for kept in kept_tensors(packed):
            storage = kept.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return packed

    unpack = inner.unpack if inner is not None else (lambda t: t)
    model.train()
    with context, torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        out = model(x)
    del out
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


def _kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (``VmRSS``, ``VmHWM``), None where unreadable."""
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def _release_free_memory() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``), so a step's peak starts from what is in use."""
    name = ctypes.util.find_library("c")
    if name:
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to return
            ctypes.CDLL(name).malloc_trim(0)


def peak_step_bytes(step: Callable[[], object], device: torch.device) -> int | None:
    """How far one call of ``step`` (a training step) raises the process's memory above what it
    held before: on CUDA, the allocator's peak minus what was allocated before; on the CPU, the peak
    resident set size during the step (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) minus
    the resident size before it, freed heap returned to the system first. None where Linux's counters
    are missing. It includes the kept activations, workspace, gradients and new optimizer state."""
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    _release_free_memory()
    before = _kib("VmRSS")
    try:
        _CLEAR_REFS.write_text("5")  # reset the peak resident size (Linux >= 4.0)
    except OSError:
        return None
    step()
    peak = _kib("VmHWM")
    return None if before is None or peak is None else max(0, peak - before)


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """``params`` (bytes of the parameters; their gradients take as many) and ``optimizer`` (bytes of
    the optimizer's state, e.g. SGD's momentum buffers, after at least one step)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    state = sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor))
    return {"params": params, "optimizer": state}
