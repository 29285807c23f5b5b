"""Parameter counts."""

from __future__ import annotations

from typing import NamedTuple

from torch import nn


class ParameterCount(NamedTuple):
    trainable: int
    total: int

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable / max(1, self.total)


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameter counts (shared tensors counted once)."""
    seen, trainable, total = set(), 0, 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        if parameter.requires_grad:
            trainable += parameter.numel()
    return ParameterCount(trainable, total)
