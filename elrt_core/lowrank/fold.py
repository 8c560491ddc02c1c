"""Inference models with batch norm folded into the preceding convolution (low-rank: its last factor).

In eval mode a batch norm is the per-channel affine map ``y = s (x - mean) + beta`` with
``s = gamma / sqrt(running_var + eps)``. When its input is the output of a convolution with weight
``W`` ``(C_out, ...)`` and bias ``b`` (zero if none) that nothing else reads, the pair equals one
convolution with weight ``s[o] W[o]`` and bias ``s (b - mean) + beta`` (Ioffe & Szegedy 2015; the
standard conv-BN fusion for inference). A low-rank layer's chain ends with a conv holding the output
channels and the bias, so the fold scales that last factor only: the layer keeps its format, ranks
and cost, and one memory pass (the batch norm) disappears.

Which convolution feeds which batch norm is read from the model's graph (``torch.fx`` symbolic
trace, low-rank layers as leaves); a batch norm that does not directly follow a convolution, or
whose convolution's output is also used elsewhere, is left in place.
"""

from __future__ import annotations

import copy

import torch
import torch.fx
from torch import nn

from .layers import LowRankConv2d

__all__ = ["fold_batchnorm", "conv_bn_pairs"]


class _LeafTracer(torch.fx.Tracer):
    """Symbolic tracer that keeps low-rank layers as single nodes."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, LowRankConv2d) or super().is_leaf_module(m, qualname)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(conv name, batch-norm name)`` of every ``nn.BatchNorm2d`` whose only input is the output of an
    ``nn.Conv2d`` or low-rank layer that feeds nothing else (module names as in ``named_modules``)."""
    graph = _LeafTracer().trace(model)
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0] if node.args else None
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and len(source.users) == 1
            and isinstance(modules.get(source.target), (nn.Conv2d, LowRankConv2d))
        ):
            pairs.append((str(source.target), str(node.target)))
    return pairs


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Scale ``conv``'s output channels and set its bias so that ``conv`` alone computes ``bn(conv(x))`` (eval)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    new_bias = scale * (bias - bn.running_mean) + shift
    conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))).to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
    else:
        conv.bias.copy_(new_bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with each batch norm that directly follows a convolution folded
    into it (into the last factor of a low-rank layer) and replaced by ``nn.Identity``.

    The copy computes the same function as ``model.eval()`` (up to float rounding) and is meant for
    inference only: its batch norms no longer exist, so training it would change the model.
    ``model`` is not modified.
    """
    new = copy.deepcopy(model).eval()
    for conv_name, bn_name in conv_bn_pairs(new):
        conv = new.get_submodule(conv_name)
        bn = new.get_submodule(bn_name)
        if bn.running_mean is None:  # no running statistics: eval mode uses batch statistics, nothing to fold
            continue
        _fold_into(conv.convs()[-1] if isinstance(conv, LowRankConv2d) else conv, bn)
        parent, _, attr = bn_name.rpartition(".")
        setattr(new.get_submodule(parent) if parent else new, attr, nn.Identity())
    return new
