"""Pooling over a padded sequence."""

from __future__ import annotations

import torch


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``hidden`` (B x T x D) over the positions where ``mask`` (B x T) is nonzero, as sentence-transformers
    pools; the plain mean when there is no mask."""
    if mask is None:
        return hidden.mean(dim=1)
    if hidden.shape[0] != mask.shape[0] and hidden.shape[0] % mask.shape[0] == 0:
        # under mm_adapters.Parallel the hidden states hold one copy of the batch per task, task-major
        mask = mask.repeat(hidden.shape[0] // mask.shape[0], 1)
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def length_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """B x ``max_length`` boolean mask, True for the first ``lengths[b]`` positions."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]
