"""A residual adapter on a model's final embeddings (CLIP-Adapter, Gao et al. 2021)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ACTIVATIONS
from ..layers.bottleneck import ACTIVATION_MODULES


class FeatureAdapter(nn.Module):
    """``x + alpha * up(act(down(x)))`` on embeddings of width ``dim``; the backbone is left untouched.

    CLIP-Adapter mixes as ``(1 - alpha) * x + alpha * relu(mlp(x))``; this residual form starts as the identity
    (``up`` is zero-initialised, like the bottleneck adapters) and, once embeddings are L2-normalised for
    retrieval, differs from it only by the final ReLU. Use one per modality (an image and a text one for CLIP).
    Parameters: ``2 * dim * dim / reduction_factor + dim / reduction_factor + dim``.
    """

    def __init__(
        self, dim: int, reduction_factor: int = 4, alpha: float = 0.2, activation: str = "relu"
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
        if not reduction_factor > 0:
            raise ValueError(f"reduction_factor must be positive, got {reduction_factor!r}.")
        bottleneck = max(1, int(dim // reduction_factor))
        self.alpha = float(alpha)
        self.down = nn.Linear(dim, bottleneck)
        self.act = ACTIVATION_MODULES[activation]()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.up(self.act(self.down(x.to(self.down.weight.dtype))))
        return x + (self.alpha * delta).to(x.dtype)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
