"""Random weights as training leaves them, where an initialisation would hide what the sweep checks."""

from __future__ import annotations

import re

import torch
from torch import nn

_LAYER_SCALE = re.compile(r"(gamma|layer_?scale|(^|\.)ls\d|lambda\d)", re.IGNORECASE)
LAYER_SCALE = 0.1


def as_trained(model: nn.Module) -> nn.Module:
    """A norm initialised to zero (timm's Swin-v2 post-norms start at 0 so each block starts as the identity) outputs
    zeros, and an adapter reading zeros gets no gradient; a layer scale initialised to 1e-6 (CaiT, large BEiT,
    ConvNeXt) scales an adapter's change below float precision, so a running adapter looks skipped. Both are set
    to values training reaches (norm weight 1, layer scale 0.1)."""
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if "Norm" in type(module).__name__ and isinstance(weight, nn.Parameter) and not weight.any():
                weight.fill_(1.0)
        for name, parameter in model.named_parameters():
            small = parameter.numel() and parameter.abs().max().item() < 1e-3
            if _LAYER_SCALE.search(name) and small and parameter.squeeze().dim() <= 1:
                parameter.fill_(LAYER_SCALE)
    return model
