"""Gradient checkpointing of the adapted layers: keep only their inputs, recompute the rest in backward.

Adapters leave the backbone frozen, but every layer above the lowest adapter still stores its activations for
the backward pass. Checkpointing those layers trades one extra forward through them for that memory (useful for
long audio). Layers below the lowest adapter store nothing anyway (see :mod:`mm_adapters.speed.prefix`).
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.checkpoint import checkpoint

from ..site import _Wrapper
from .prefix import FrozenPrefixLayer, tower_layer_lists


class CheckpointedLayer(_Wrapper):
    """Runs its block under ``torch.utils.checkpoint`` (non-reentrant) while training with autograd on."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training:
            return checkpoint(self.base_layer, *args, use_reentrant=False, **kwargs)
        return self.base_layer(*args, **kwargs)


def checkpoint_layers(model: nn.Module) -> int:
    """Wrap every block that is not part of the frozen prefix in :class:`CheckpointedLayer`; returns how many."""
    count = 0
    for layers in tower_layer_lists(model).values():
        for index, layer in enumerate(layers):
            if not isinstance(layer, (FrozenPrefixLayer, CheckpointedLayer)):
                layers[index] = CheckpointedLayer(layer)
                count += 1
    return count


def uncheckpoint_layers(model: nn.Module) -> None:
    for layers in tower_layer_lists(model).values():
        for index, layer in enumerate(layers):
            if isinstance(layer, CheckpointedLayer):
                layers[index] = layer.base_layer
