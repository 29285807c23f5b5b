"""Which modules are projections the automatic spec can find sublayers by: ``nn.Linear``; transformers' ``Conv1D``
(GPT-2 style: a Linear with its weight transposed, width in ``nf``); and, for NCHW blocks, convolutions. Conv1D is
looked up where transformers is already imported (a model using it has imported it), so tracing a model of another
library never imports transformers."""

from __future__ import annotations

import sys

from torch import nn


def linear_kinds() -> tuple[type, ...]:
    conv1d = getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)
    return (nn.Linear,) if conv1d is None else (nn.Linear, conv1d)


def weight_kinds() -> tuple[type, ...]:
    return (*linear_kinds(), nn.Conv1d, nn.Conv2d)


def width_attribute(module: nn.Module) -> str | None:
    """The attribute holding a projection's output width (None for other modules)."""
    if isinstance(module, nn.Linear):
        return "out_features"
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return "out_channels"
    if isinstance(module, linear_kinds()):
        return "nf"
    return None
