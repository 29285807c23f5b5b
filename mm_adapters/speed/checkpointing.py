"""Gradient checkpointing of the adapted layers: keep only their inputs, recompute the rest in backward.

Adapters leave the backbone frozen, but every layer above the lowest adapter still stores its activations for
the backward pass. Checkpointing those layers trades one extra forward through them for that memory (useful for
long audio). Layers below the lowest adapter store nothing anyway (see :mod:`mm_adapters.speed.prefix`).
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.checkpoint import checkpoint

from ..site import LayerWrapper
from .prefix import FrozenPrefixLayer, tower_layer_lists


class CheckpointedLayer(LayerWrapper):
    """Runs its block under ``torch.utils.checkpoint`` (non-reentrant) while training with autograd on."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.training:
            return checkpoint(self.base_layer, *args, use_reentrant=False, **kwargs)
        return self.base_layer(*args, **kwargs)


def checkpoint_layers(model: nn.Module) -> int:
    """Wrap every block that is not part of the frozen prefix in :class:`CheckpointedLayer`; returns how many.

    Blocks are replaced in the module that holds them, so towers gathered over stages (Swin's ``layers.*.blocks``)
    or picked by class (CoAtNet) are checkpointed too."""
    holders = _holders(model)
    count = 0
    for layers in tower_layer_lists(model).values():
        for layer in list(layers):
            parent, name = holders[id(layer)]
            if isinstance(layer, _WRAPPERS) or isinstance(parent, _WRAPPERS):
                continue
            setattr(parent, name, CheckpointedLayer(layer))
            count += 1
    return count


def uncheckpoint_layers(model: nn.Module) -> None:
    holders = _holders(model)
    for layers in tower_layer_lists(model).values():
        for layer in list(layers):
            wrapper = layer if isinstance(layer, CheckpointedLayer) else holders[id(layer)][0]
            if isinstance(wrapper, CheckpointedLayer):
                parent, name = holders[id(wrapper)]
                setattr(parent, name, wrapper.base_layer)


_WRAPPERS = (FrozenPrefixLayer, CheckpointedLayer)


def _holders(model: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    """Module id -> (the module holding it, its attribute name there)."""
    return {
        id(child): (parent, name) for parent in model.modules() for name, child in parent.named_children()
    }
