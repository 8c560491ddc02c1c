"""A format is one class in FORMATS: a new one flows through conversion, cost, Figure 3 and the verdicts."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from elrt_core import analysis, cost, models
from elrt_core.lowrank import FORMATS, LowRankConv2d, convert, report
from elrt_core.study import figures, verdicts


class InputRankConv2d(LowRankConv2d):
    """Toy format: a 1x1 conv ``C_in -> r`` then the ``k_h x k_w`` conv ``r -> C_out`` (Tucker-1 on the
    input mode). Its best fit is the truncated SVD of the mode-1 unfolding; it declares neither
    ``matricize`` nor ``tucker_modes``, so the analysis fits it directly."""

    fmt = "toy"
    label = "toy: input rank only"
    rank_names = ("rank",)

    @classmethod
    def max_ranks(cls, c_in, c_out, kernel_size):
        return (c_in,)

    @classmethod
    def cost(cls, geom, ranks):
        (r,) = ranks
        macs = cost.conv_macs(geom.in_channels, r, (1, 1), geom.in_hw) + cost.conv_macs(
            r, geom.out_channels, geom.kernel_size, geom.out_hw
        )
        params = geom.in_channels * r + cost.conv_params(r, geom.out_channels, geom.kernel_size, bias=geom.bias)
        return macs, params

    def _build(self, bias):
        (r,) = self.ranks
        self.first = nn.Conv2d(self.in_channels, r, 1, bias=False)
        self.last = nn.Conv2d(
            r, self.out_channels, self.kernel_size, stride=self.stride, padding=self.padding, dilation=self.dilation, bias=bias
        )

    def convs(self):
        return [self.first, self.last]

    @classmethod
    def decompose(cls, weight, ranks):
        (r,) = ranks
        w = weight.detach().to("cpu", torch.float64).numpy()
        u, _, _ = np.linalg.svd(w.transpose(1, 0, 2, 3).reshape(w.shape[1], -1), full_matrices=False)
        return [u[:, :r].T, np.einsum("oihw,ir->orhw", w, u[:, :r])]

    def kernel(self):
        return torch.einsum("orhw,ri->oihw", self.last.weight, self.first.weight.flatten(1))

    def factors(self):
        return {"U1": self.first.weight.flatten(1), "U2": self.last.weight.flatten(1).T}


def test_every_format_has_its_own_label():
    labels = [cls.label for cls in FORMATS.values()]
    assert all(labels) and len(set(labels)) == len(labels)
    assert all(fmt == cls.fmt for fmt, cls in FORMATS.items())


def test_a_toy_format_flows_through_conversion_cost_figure_3_and_verdicts(monkeypatch):
    monkeypatch.setitem(FORMATS, "toy", InputRankConv2d)
    torch.manual_seed(0)
    dense = models.get("resnet20")
    small = convert(dense, "toy", flops_ratio=2.0)
    described = report(small)
    toy_layers = {layer.name: layer.macs for layer in described.layers if layer.format == "toy"}  # closed form
    assert len(toy_layers) == 18 and abs(described.macs_ratio / 2 - 1) <= 0.02
    counted = cost.count(small).layers  # forward hooks on the chain's convs
    assert toy_layers == {n: sum(c.macs for c in counted if c.name.startswith(f"{n}.")) for n in toy_layers}

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1), nn.Conv2d(12, 6, 3, padding=1))
    df = analysis.layer_errors(net, ["toy", "tucker2", "matrix"], macs_budgets=(2.0, 3.0), input_shape=(3, 8, 8))
    toy = df[df["format"] == "toy"]
    assert len(toy) == 4 and (toy["macs_ratio"] >= toy["budget"]).all()
    for row in toy.itertuples():  # its error is the discarded energy of the input unfolding (Eckart-Young)
        w = net.get_submodule(row.layer).weight.detach().double().numpy()
        tail = analysis.svd_errors(w.transpose(1, 0, 2, 3).reshape(w.shape[1], -1))[row.ranks[0]]
        assert row.rel_error == pytest.approx(tail, rel=1e-6)

    frame = df.assign(weights="trained")
    for fig in (figures.layer_errors(frame), figures.error_curves(frame)):
        legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert "toy: input rank only" in [text.get_text() for legend in legends for text in legend.get_texts()]
        plt.close(fig)
    counts = verdicts.win_counts(frame)
    assert set(counts["opponent"]) == {"toy", "matrix"} and (counts["layers"] == 2).all()
    claim = verdicts.format_claim(frame, 2.0, "scale", opponents=("toy",))
    assert "vs toy: input rank only (supported): lower in" in claim.effect
