"""The AdapterFusion layer (Pfeiffer et al. 2021): per token, attention over the outputs of N adapters."""

from __future__ import annotations

import torch
from torch import nn


class FusionLayer(nn.Module):
    """``hidden + sum_n softmax_n(q . k_n) * value(delta_n)``, the query from the sublayer output ``hidden``, keys
    and values from each adapter's output ``delta_n`` (as AdapterHub's BertFusion, ``dynamic`` config).

    The query starts at zero, so fusion starts as the plain average of the adapter outputs; the value starts as
    the identity, so fusing one adapter gives exactly that adapter's output. ``weights`` (a softmax module) is
    where :func:`mm_adapters.record_fusion_weights` reads the attention weights, B x T x N.
    Parameters: ``3 * d * d + 2 * d`` for hidden size ``d``.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size, bias=False)
        self.weights = nn.Softmax(dim=-1)
        nn.init.zeros_(self.query.weight)
        nn.init.zeros_(self.query.bias)
        nn.init.normal_(self.key.weight, std=0.02)
        nn.init.zeros_(self.key.bias)
        with torch.no_grad():
            self.value.weight.copy_(torch.eye(hidden_size))

    def forward(
        self, hidden: torch.Tensor, deltas: torch.Tensor, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``hidden``: ... x D sublayer output; ``deltas``: ... x N x D adapter outputs (before their residual);
        ``query``: what the query reads (default ``hidden``; the adapters' input for residual-sum placements)."""
        dtype = self.query.weight.dtype
        query = self.query((hidden if query is None else query).to(dtype)).unsqueeze(-2)  # ... x 1 x D
        keys = self.key(deltas.to(dtype))  # ... x N x D
        weights = self.weights((query * keys).sum(dim=-1))  # ... x N
        # value is linear without bias, so weighting first is the same as AdapterHub's value-then-weight, N times cheaper
        fused = self.value(torch.einsum("...n,...nd->...d", weights, deltas.to(dtype)))
        return hidden + fused.to(hidden.dtype)

    def regularization(self) -> torch.Tensor:
        """``||W_value - I||^2``: AdapterHub adds ``0.01 *`` this to the loss to keep the value near identity."""
        identity = torch.eye(
            self.value.weight.shape[0], device=self.value.weight.device, dtype=self.value.weight.dtype
        )
        return (self.value.weight - identity).pow(2).sum()
