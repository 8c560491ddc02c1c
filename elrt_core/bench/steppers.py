"""What the bench times of a whole network: a training step, an inference pass or the penalty alone
(:class:`Stepper`; one layer's step is :func:`elrt_core.timing.layer_step`); each call returns seconds."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ..lowrank import recomputing
from ..regularizers import penalty
from ..timing import seconds

__all__ = ["Stepper"]


class Stepper:
    """One model with its optimizer and a fixed batch; ``train()``/``infer()`` time one step (s).

    ``autocast``: run forward passes under bfloat16 autocast; ``compiled``: call the model through
    ``torch.compile`` (parameters, optimizer and penalty stay those of ``model``). A training forward
    runs within :func:`elrt_core.lowrank.recomputing` (as the training loop runs it), except compiled."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        reg: str = "none",
        reg_weight: float = 1e-3,
        *,
        autocast: bool = False,
        compiled: bool = False,
    ):
        self.model, self.x, self.y, self.reg, self.reg_weight = model, x, y, reg, reg_weight
        self.forward = torch.compile(model) if compiled else model
        self.autocast, self.compiled = autocast, compiled
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        self.gen = torch.Generator().manual_seed(0)

    def context(self):
        if self.autocast:
            return torch.autocast(self.x.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self) -> None:
        """One training step, untimed: forward, loss (and penalty), backward, SGD step."""
        self.model.train()
        with self.context(), contextlib.nullcontext() if self.compiled else recomputing(self.model):
            loss = F.cross_entropy(self.forward(self.x), self.y)
        if self.reg != "none":
            loss = loss + penalty(self.model, self.reg, self.reg_weight, generator=self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def train(self) -> float:
        """Seconds of one training step (:meth:`train_step`)."""
        return seconds(self.train_step, self.x.device)

    def regularize(self) -> float:
        """Seconds of the penalty alone: its forward and backward (0 for ``reg="none"``)."""
        if self.reg == "none":
            return 0.0
        self.model.train()
        elapsed = seconds(lambda: penalty(self.model, self.reg, self.reg_weight, generator=self.gen).backward(), self.x.device)
        self.opt.zero_grad(set_to_none=True)
        return elapsed

    def infer(self) -> float:
        """Seconds of one inference forward pass (eval mode, no autograd)."""
        self.model.eval()

        def forward() -> None:
            with torch.no_grad(), self.context():
                self.forward(self.x)

        return seconds(forward, self.x.device)
