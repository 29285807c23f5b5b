"""Stochastic depth on a residual branch (timm's ``DropPath``, torchvision's ``StochasticDepth(mode="row")``)."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """While training, zero the whole branch output of each sample with probability ``p`` and scale the kept ones by
    ``1 / (1 - p)``, so the expected output is unchanged; the identity in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropPath probability must be in [0, 1), got {p!r}.")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"
