"""Contrastive loss for image-text pairs where several captions may describe the same image."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, image_ids: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP's loss) over a batch of B (image, caption) rows.

    Rows with the same ``image_id`` show the same image, so each of their captions is a positive: the target of a
    row is spread evenly over all its positives. With distinct images this is exactly CLIP's loss.
    """
    logits = logit_scale.float() * image_embeds.float() @ text_embeds.float().T
    positives = (image_ids[:, None] == image_ids[None, :]).float()
    targets = positives / positives.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))
