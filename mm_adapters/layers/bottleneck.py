"""The bottleneck adapter: down-projection, nonlinearity, up-projection."""

from __future__ import annotations

import torch
from torch import nn

from ..config import AdapterConfig
from .drop_path import DropPath
from .scale import LearnedScale

ACTIVATION_MODULES = {"relu": nn.ReLU, "gelu": nn.GELU, "swish": nn.SiLU, "silu": nn.SiLU, "tanh": nn.Tanh}


class BottleneckAdapter(nn.Module):
    """``scaling * drop_path(up(dropout(act(down(x)))))``; the caller adds it to the hidden state. ``scaling`` is a
    number or a learned :class:`LearnedScale` (``scale``); ``drop_path`` only acts in training.

    With ``init="zero"`` the up-projection starts at zero, so an adapted model computes exactly its base model until
    it trains; ``init="bert"`` draws both projections from N(0, 0.02) with zero biases (AdapterHub's default),
    ``init="trunc_normal"`` from N(0, 0.01) truncated to +-0.02 (AdapterHub's ``"houlsby"``).
    ``reads`` says what the site feeds it (``mm_adapters.placements``). Parameters: ``2 * r * d + r + d`` for hidden size ``d`` and bottleneck ``r`` (``+ d`` with ``scaling="channel"``).
    """

    def __init__(self, hidden_size: int, config: AdapterConfig) -> None:
        super().__init__()
        bottleneck = config.bottleneck_size(hidden_size)
        self.parallel = config.is_parallel
        self.reads = config.reads
        self.down = nn.Linear(hidden_size, bottleneck)
        self.act = ACTIVATION_MODULES[config.activation]()
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.up = nn.Linear(bottleneck, hidden_size)
        self.drop_path = DropPath(config.drop_path) if config.drop_path > 0 else None
        learned = isinstance(config.scaling, str)
        self.scaling = 1.0 if learned else float(config.scaling)
        self.scale = LearnedScale(hidden_size if config.scaling == "channel" else 1) if learned else None
        if config.init == "bert":
            for linear in (self.down, self.up):
                nn.init.normal_(linear.weight, mean=0.0, std=0.02)
                nn.init.zeros_(linear.bias)
        elif config.init == "trunc_normal":
            for linear in (self.down, self.up):
                nn.init.trunc_normal_(linear.weight, mean=0.0, std=1e-2, a=-2e-2, b=2e-2)
                nn.init.zeros_(linear.bias)
        else:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The adapter output for ``x``; with ``residual``, ``residual + output``, the add fused into the
        up-projection (one pass over the hidden state instead of two)."""
        weight = self.up.weight
        # fused only without scaling: with it, scaling the sum of the parts rounds differently from AdapterHub's
        # ``scaling * up(.) + residual`` (1e-5 apart on a 2-layer CLIP), and interop promises the same outputs
        if (
            residual is not None
            and self.scaling == 1.0
            and self.scale is None
            and (self.drop_path is None or not self.training)
            and residual.dtype == x.dtype == weight.dtype
            and not torch.is_autocast_enabled(x.device.type)
        ):
            inner = self.bottleneck(x)
            shape = residual.shape
            out = torch.add(residual.reshape(-1, shape[-1]), self.up.bias)
            out.addmm_(inner.reshape(-1, inner.shape[-1]), weight.t())
            return out.view(shape)
        # Under autocast the projections choose their own dtype; casting x to the (fp32) weights first would only
        # add two passes over the hidden state.
        inner = x if torch.is_autocast_enabled(x.device.type) else x.to(self.down.weight.dtype)
        delta = self.up(self.bottleneck(inner))
        # AdapterHub's order: drop path, then the scaling
        if self.drop_path is not None:
            delta = self.drop_path(delta)
        if self.scale is not None:
            delta = self.scale(delta)
        if self.scaling != 1.0:
            delta = delta * self.scaling
        delta = delta.to(x.dtype)
        return delta if residual is None else residual + delta

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck activations that the up-projection reads."""
        return self.dropout(self.act(self.down(x)))
