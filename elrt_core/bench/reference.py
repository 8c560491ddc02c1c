"""The same Tucker-2 network in a reference library (TensorLy-Torch), timed beside ours and dense."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from .. import lowrank
from ..machine_load import BackgroundLoad
from ..timing import in_turns
from .settings import BenchSettings, build_models, random_batch, record_provenance
from .steppers import Stepper

__all__ = ["tltorch_model", "reference_speedup"]


def tltorch_model(low: nn.Module) -> nn.Module:
    """A copy of the Tucker-2 network ``low`` whose low-rank layers are TensorLy-Torch's Tucker
    ``FactorizedConv`` (``implementation="factorized"``) at the same ranks ``(R2, R1)`` with the
    spatial modes at full rank (Kossaifi et al., TensorLy-Torch 0.5): the same network run by a
    reference library, for timing. Needs the optional dependency ``tensorly-torch``. Its layers compute
    with tensorly's pytorch backend: run them inside ``tensorly.backend_context("pytorch")``; the
    global backend is left as it was (importing tltorch would switch it)."""
    import copy

    import tensorly as tl

    backend = tl.get_backend()
    try:
        import tltorch
    except ImportError:
        raise ValueError("the reference measurement needs TensorLy-Torch: pip install -c constraints.txt -e '.[bench]'") from None
    finally:
        tl.set_backend(backend)  # importing tltorch sets tensorly's global backend to pytorch

    ref = copy.deepcopy(low)
    for name, layer in list(ref.named_modules()):
        if isinstance(layer, lowrank.Tucker2Conv2d):
            r1, r2 = layer.ranks
            dense = layer.to_dense()  # the shape, stride and bias FactorizedConv copies (its weights are not used)
            fact = tltorch.FactorizedConv.from_conv(
                dense,
                rank=(r2, r1, *layer.kernel_size),
                factorization="tucker",
                implementation="factorized",
                decompose_weights=False,
            )
            parent, _, attr = name.rpartition(".")
            setattr(ref.get_submodule(parent) if parent else ref, attr, fact)
    return ref


def reference_speedup(s: BenchSettings) -> dict[str, Any]:
    """Training-step times of dense, this project's Tucker-2 network and the same network built from
    TensorLy-Torch layers (:func:`tltorch_model`), timed in turns in one process (medians): the
    ratios ``ours_vs_dense``, ``reference_vs_dense`` and ``ours_vs_reference`` (> 1: ours faster)."""
    s.validate()
    if s.format != "tucker2":
        raise ValueError(f"the TensorLy-Torch reference exists for tucker2 only, got format {s.format!r}")
    import tensorly as tl

    device = torch.device(s.device)
    started, load = time.time(), BackgroundLoad()
    dense, low, shape = build_models(s, device)
    memory = torch.channels_last if s.channels_last else torch.contiguous_format
    with tl.backend_context("pytorch"):
        ref = tltorch_model(low).to(device, memory_format=memory)
        x, y = random_batch(s, shape, device)
        steppers = [Stepper(m, x, y, **s.stepper_options) for m in (dense, low, ref)]
        train = in_turns([st.train for st in steppers], s.steps, s.warmup)
    return {
        "kind": "reference",
        **asdict(s),
        "macs_ratio": lowrank.report(low, shape).macs_ratio,
        "reference": f"tensorly-torch {_package_version('tensorly-torch')} FactorizedConv (tucker, factorized)",
        "train_step_ms": {"dense": 1000 * train[0], "ours": 1000 * train[1], "reference": 1000 * train[2]},
        "ours_vs_dense": train[0] / train[1],
        "reference_vs_dense": train[0] / train[2],
        "ours_vs_reference": train[2] / train[1],
        "provenance": record_provenance(s, device, started, load),
    }


def _package_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)
