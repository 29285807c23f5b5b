"""Which modules are projections the automatic spec can find sublayers by: ``nn.Linear``; transformers' ``Conv1D``
(GPT-2 style: a Linear with its weight transposed, width in ``nf``); and, for NCHW blocks, convolutions. Conv1D is
looked up where transformers is already imported (a model using it has imported it), so tracing a model of another
library never imports transformers."""

from __future__ import annotations

import sys

from torch import nn


class _HoldsMatrix(type):
    def __instancecheck__(cls, module) -> bool:
        return isinstance(module, nn.Module) and any(p.dim() >= 2 for p in module.parameters(recurse=False))


class MatrixHolder(metaclass=_HoldsMatrix):
    """``isinstance(module, MatrixHolder)``: a module with a weight matrix of its own, not in a Linear (mixture-of-
    experts FFNs that keep their experts as stacked parameters: GraniteMoE, Mixtral-style fused experts). The last
    kind the automatic spec tries, where Linears and convolutions find no pair."""


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
