"""Low-rank layers that keep no more for backward than they need: cheap tensors recomputed, exactly.

A low-rank layer runs a chain of convolutions ``x -> a_1 -> ... -> b -> y`` (Tucker-2:
``x -> a`` (1x1, ``C_in -> R1``) ``-> b`` (k x k core, ``R1 -> R2``) ``-> y`` (1x1, ``R2 -> C_out``)).
Autograd keeps the input of every conv for backward, so beside ``x`` (kept anyway: it is the output
of the ReLU before, which keeps it) the chain keeps ``a_1, ..., b``, and the batch norm after the
layer keeps ``y``. Within :class:`Recomputing` (a ``torch.autograd.graph.saved_tensors_hooks``
context, the selective form of activation checkpointing), a low-rank layer instead leaves a recipe
for the tensors that are cheap to rebuild, at one of two levels (:data:`LEVELS`):

* ``"chain"``: an intermediate whose conv is cheap (the format's ``RECOMPUTE_CHEAP``: 1x1 and
  depthwise convs; Tucker-2: ``a``; CP: all three) is rebuilt from the tensor before it when backward
  needs it. Formats with two convs (matrix, spatial) have no such intermediate.
* ``"all"``: also the output ``y``, where the last conv is cheap and its input ``b`` has fewer
  elements than ``y`` (Tucker-2 at reduced ``R2 < C_out``): ``y`` is kept as ``b`` and rebuilt by the
  last conv when the batch norm's backward needs it.

``"off"`` keeps everything, as plain modules do. A recipe is one ``F.conv2d`` call with the layer's
own parameters under the autocast state of forward: the same deterministic kernel on the same
inputs, so the rebuilt tensor, and hence every gradient, is bitwise equal to the plain chain's
(``tests/test_recompute.py``). Backward itself is autograd's own. A recipe whose source or
parameters changed in place since forward raises, as autograd does for a modified saved tensor.

Outside :class:`Recomputing` (inference, :func:`elrt_core.timing.layer_step`), or for the
``dense``/``fold_*`` computations of :meth:`~elrt_core.lowrank.layers.LowRankConv2d.set_impl`, the
layers keep everything. ``torch.compile`` chooses its own recomputation: do not combine the two.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..cost import conv_out_hw

__all__ = ["LEVELS", "Recomputing", "recomputing", "set_recompute", "kept_tensors"]

LEVELS = ("off", "chain", "all")
"""How much a low-rank layer recomputes in backward (see the module docstring), least first."""


class _Recipe:
    """A saved tensor rebuilt in backward: ``conv`` applied to ``source`` (a tensor, or the recipe of
    one), with ``conv``'s parameters, under the autocast state of forward.

    The result of a call is kept for one later call (a CP chain rebuilds ``a_2`` for ``b`` first,
    then hands it to the conv that saved ``a_2``), so a chain is rebuilt once per backward.
    """

    def __init__(self, conv: nn.Conv2d, source: torch.Tensor | _Recipe) -> None:
        self.conv, self.source = conv, source
        self.versions = self._versions()
        device = conv.weight.device.type
        self.autocast = (device, torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else None
        self._spare: torch.Tensor | None = None

    def _versions(self) -> tuple[int, ...]:
        tensors = [self.conv.weight, *([] if self.conv.bias is None else [self.conv.bias])]
        if isinstance(self.source, torch.Tensor):
            tensors.append(self.source)
        return tuple(t._version for t in tensors)

    def __call__(self) -> torch.Tensor:
        """The tensor, for the backward node that saved it (a value kept by :meth:`value` first)."""
        if self._spare is not None:
            value, self._spare = self._spare, None
            return value
        return self.value()

    def value(self, keep: bool = False) -> torch.Tensor:
        """Rebuild the tensor; ``keep``: also hold it for the next :meth:`__call__` (a chain's source)."""
        if self._versions() != self.versions:
            raise RuntimeError(
                "a tensor a low-rank layer recomputes from (its input or a factor) was modified in place "
                "between forward and backward (the error autograd raises for a modified saved tensor)"
            )
        source = self.source.value(keep=True) if isinstance(self.source, _Recipe) else self.source
        amp = torch.autocast(*self.autocast) if self.autocast else contextlib.nullcontext()
        with torch.no_grad(), amp:
            value = self.conv._conv_forward(source, self.conv.weight, self.conv.bias)  # what nn.Conv2d.forward runs
        if keep:
            self._spare = value
        return value

    def tensors(self) -> Iterator[torch.Tensor]:
        """The activation tensors this recipe keeps alive (its source, through nested recipes)."""
        yield from self.source.tensors() if isinstance(self.source, _Recipe) else (self.source,)


class Recomputing:
    """Context manager: within it, low-rank layers whose ``recompute`` level is not ``"off"`` leave
    recipes instead of cheap tensors for backward (see the module docstring).

    Around a training forward pass (backward may run after the block ends)::

        with Recomputing():
            loss = loss_fn(model(x), y)
        loss.backward()

    A saved tensor is replaced only if it is the very tensor a layer registered (same Python
    object) and unchanged since (same version: an in-place ReLU on ``y`` keeps ``y`` as it is).
    :meth:`pack` and :meth:`unpack` are the hooks, for callers that wrap them
    (:func:`elrt_core.bench.activation_bytes` counts what :meth:`pack` keeps).
    """

    _local = threading.local()

    def __init__(self) -> None:
        self._recipes: dict[int, tuple[weakref.ref, int, _Recipe]] = {}
        self._hooks: Any = None

    @classmethod
    def current(cls) -> Recomputing | None:
        """The innermost active :class:`Recomputing` of this thread, or None."""
        stack = getattr(cls._local, "stack", None)
        return stack[-1] if stack else None

    def register(self, t: torch.Tensor, recipe: _Recipe) -> None:
        """Keep ``t`` (a tensor a layer just computed) as ``recipe`` where it is saved for backward."""
        key = id(t)
        self._recipes[key] = (weakref.ref(t, lambda _: self._recipes.pop(key, None)), t._version, recipe)

    def recipe(self, t: torch.Tensor) -> _Recipe | None:
        """The recipe registered for ``t``, if ``t`` is unchanged since."""
        entry = self._recipes.get(id(t))
        if entry is not None and entry[0]() is t and t._version == entry[1]:
            return entry[2]
        return None

    def pack(self, t: torch.Tensor) -> torch.Tensor | _Recipe:
        return self.recipe(t) or t

    @staticmethod
    def unpack(packed: torch.Tensor | _Recipe) -> torch.Tensor:
        return packed() if isinstance(packed, _Recipe) else packed

    def __enter__(self) -> Recomputing:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(self)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        self._local.stack.remove(self)
        self._recipes.clear()


def kept_tensors(packed: torch.Tensor | _Recipe) -> tuple[torch.Tensor, ...]:
    """The activation tensors a packed saved tensor (what :meth:`Recomputing.pack` returned) keeps alive."""
    return tuple(packed.tensors()) if isinstance(packed, _Recipe) else (packed,)


def run_chain(x: torch.Tensor, convs: Sequence[nn.Conv2d], cheap: frozenset[int], level: str) -> torch.Tensor:
    """``convs`` applied to ``x`` in order; within an active :class:`Recomputing` and at ``level``
    ``"chain"`` or ``"all"``, each tensor that is cheap to rebuild is registered with its recipe
    right after it is computed (before the next conv saves it). ``cheap``: the indices of the convs
    whose outputs are cheap to recompute."""
    context = Recomputing.current() if level != "off" and torch.is_grad_enabled() else None
    if context is None:
        for conv in convs:
            x = conv(x)
        return x
    source: torch.Tensor | _Recipe = x
    for i, conv in enumerate(convs[:-1]):
        x = conv(x)
        last_input = i == len(convs) - 2
        if i in cheap and not (last_input and _output_rebuilt(convs, cheap, level, x)):
            source = _Recipe(conv, source)
            context.register(x, source)
        else:
            source = x
    y = convs[-1](x)
    if _output_rebuilt(convs, cheap, level, x):
        context.register(y, _Recipe(convs[-1], x))
    return y


def _output_rebuilt(convs: Sequence[nn.Conv2d], cheap: frozenset[int], level: str, b: torch.Tensor) -> bool:
    """Whether the output is kept as the last conv's input ``b`` (then kept as it is): at level
    ``"all"``, for a cheap last conv whose output ``(N, C_out, H', W')`` has more elements than ``b``."""
    if level != "all" or len(convs) - 1 not in cheap:
        return False
    last = convs[-1]
    h, w = conv_out_hw(tuple(b.shape[-2:]), last.kernel_size, last.stride, last.padding, last.dilation)
    return b.numel() < b.shape[0] * last.out_channels * h * w


def set_recompute(model: nn.Module, level: str | None = None) -> nn.Module:
    """Set the recompute level of every low-rank layer of ``model``: one of :data:`LEVELS`, or None
    for each format's default (the class attribute ``recompute``). Returns ``model``."""
    from .layers import LowRankConv2d

    if level is not None and level not in LEVELS:
        raise ValueError(f"unknown recompute level {level!r}; allowed: {', '.join(LEVELS)}")
    for m in model.modules():
        if isinstance(m, LowRankConv2d):
            if level is None:
                m.__dict__.pop("recompute", None)  # the class value again
            else:
                m.recompute = level
    return model


def recomputing(model: nn.Module) -> Recomputing | contextlib.nullcontext:
    """The context for a training forward pass of ``model``: a :class:`Recomputing` where a low-rank
    layer recomputes, else a context that does nothing (a dense model keeps autograd's own saving)."""
    from .layers import LowRankConv2d

    if any(isinstance(m, LowRankConv2d) and m.recompute != "off" for m in model.modules()):
        return Recomputing()
    return contextlib.nullcontext()
