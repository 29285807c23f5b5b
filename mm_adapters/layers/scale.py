"""A learned multiplier on an adapter's output (AdapterHub's ``scaling="channel"`` / ``"learned"``)."""

from __future__ import annotations

import torch
from torch import nn


class LearnedScale(nn.Module):
    """``x * weight``, ``weight`` starting at ones: one factor per channel (``size`` = hidden size) or one in all
    (``size`` = 1)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight
