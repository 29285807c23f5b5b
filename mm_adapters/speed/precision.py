"""bf16 for the frozen backbone, fp32 master weights for what trains."""

from __future__ import annotations

import torch
from torch import nn


def cast_frozen(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Cast every frozen floating-point parameter and buffer of ``model`` to ``dtype``; trainable parameters
    (the active adapters) keep their dtype, so the optimizer updates fp32 master weights. Run the forward under
    ``torch.autocast(device_type, dtype)``. Returns how many tensors were cast."""
    count = 0
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad and param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
                count += 1
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_floating_point() and buffer.dtype != dtype:
                module._buffers[name] = buffer.to(dtype)
                count += 1
    return count
