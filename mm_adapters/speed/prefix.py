"""The frozen prefix of an adapted model: the layers below the lowest adapter of each tower.

Nothing there needs gradients, so :class:`FrozenPrefixLayer` runs those layers in eval mode under ``no_grad``
and, when given a :class:`~mm_adapters.speed.PrefixCache`, serves the prefix output from the cache instead of
computing it. The wrapper is found by the spec's ``layers`` path; no per-family code.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..injection import adapted_layers
from ..site import LayerWrapper, first_input
from ..specs import tower_blocks
from ..state import get_state

if TYPE_CHECKING:
    from .prefix_cache import PrefixCache

_UNKNOWN = "unknown"


def tower_layer_lists(model: nn.Module) -> dict[str, nn.ModuleList]:
    """Each tower's list of blocks, as the spec names it."""
    spec = get_state(model).spec
    return {name: tower_blocks(model, tower) for name, tower in spec.towers.items()}


def prefix_depths(model: nn.Module) -> dict[str, int]:
    """Per tower, how many bottom layers hold no active adapter (all of them for a tower without adapters)."""
    adapted = adapted_layers(model)
    return {
        tower: min(adapted.get(tower, [len(layers)])) for tower, layers in tower_layer_lists(model).items()
    }


class FrozenPrefixLayer(LayerWrapper):
    """A block below every adapter: runs in eval mode without autograd, or returns the cached prefix output.

    On a cache hit every prefix layer returns the cached output of the *last* prefix layer, shaped like the
    layer's own output (a tensor, or a tuple whose first element is the hidden state), so the blocks above see
    exactly what they would have seen.
    """

    def __init__(
        self, base_layer: nn.Module, tower: str, is_last: bool, cache: PrefixCache | None = None
    ) -> None:
        super().__init__(base_layer)
        self.tower = tower
        self.is_last = is_last
        self.cache = cache
        # None for a tensor output, the tuple length otherwise; known after the layer has run once
        self.layout: Any = _UNKNOWN
        base_layer.eval()

    def train(self, mode: bool = True) -> FrozenPrefixLayer:
        super().train(mode)
        # the frozen prefix never uses dropout: its output must not depend on the mode
        self.base_layer.train(False)
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.cache is not None and self.layout is not _UNKNOWN:
            cached = self.cache.lookup(self.tower, first_input(args, kwargs))
            if cached is not None:
                return cached if self.layout is None else (cached, *([None] * (self.layout - 1)))
        with torch.no_grad():
            out = self.base_layer(*args, **kwargs)
        self.layout = len(out) if isinstance(out, tuple) else None
        if self.is_last and self.cache is not None:
            if self.layout is None:
                self.cache.record(self.tower, out)
            elif all(extra is None for extra in out[1:]):
                self.cache.record(self.tower, out[0])
            else:
                self.cache.refuse(
                    self.tower, "its layers return more than the hidden state (e.g. a position bias)"
                )
        return out

    def extra_repr(self) -> str:
        return f"tower={self.tower!r}, last={self.is_last}, cached={self.cache is not None}"


def wrap_frozen_prefix(model: nn.Module, cache: PrefixCache | None = None) -> dict[str, int]:
    """Wrap every tower's prefix layers in :class:`FrozenPrefixLayer` (re-wrapping after adapter changes).

    Returns the prefix depth per tower. Without ``cache`` the prefix only runs without autograd and dropout.
    """
    unwrap_frozen_prefix(model)
    depths = prefix_depths(model)
    _check_frozen(model, depths)
    for tower, layers in tower_layer_lists(model).items():
        depth = depths[tower]
        for index in range(depth):
            layers[index] = FrozenPrefixLayer(layers[index], tower, is_last=index == depth - 1, cache=cache)
    return depths


def unwrap_frozen_prefix(model: nn.Module) -> None:
    """Put the original blocks back."""
    for layers in tower_layer_lists(model).values():
        for index, layer in enumerate(layers):
            if isinstance(layer, FrozenPrefixLayer):
                layers[index] = layer.base_layer


def frozen_outside_modules(model: nn.Module, include_trainable: bool = False) -> list[nn.Module]:
    """The frozen modules outside every tower's blocks (embeddings, poolers, final norms): the cache runs them in
    eval mode, so the features it stores do not depend on embedding dropout."""
    names = {id(module): name for name, module in model.named_modules()}
    layer_names = {names[id(layers)] for layers in tower_layer_lists(model).values()}
    ancestors = {".".join(name.split(".")[:i]) for name in layer_names for i in range(name.count(".") + 1)}
    found: list[nn.Module] = []

    def visit(module: nn.Module, prefix: str) -> None:
        for child_name, child in module.named_children():
            name = f"{prefix}.{child_name}" if prefix else child_name
            if name in layer_names:
                continue
            if name in ancestors:
                visit(child, name)
            elif include_trainable or not any(p.requires_grad for p in child.parameters()):
                found.append(child)

    visit(model, "")
    return found


def _check_frozen(model: nn.Module, depths: dict[str, int]) -> None:
    """The prefix runs without autograd: its layers may not be trainable, and trainable modules feeding it (e.g.
    embeddings) would get no gradient through it."""
    for tower, layers in tower_layer_lists(model).items():
        if not isinstance(layers, (nn.ModuleList, nn.Sequential)):
            raise ValueError(
                f"Tower {tower!r} has no single block list to put a frozen prefix on (its blocks are gathered from "
                f"several stages or picked by class: TowerSpec.layers {get_state(model).spec.towers[tower].layers!r}); "
                "train it without the frozen-prefix runner / cache."
            )
    below = [layers[i] for tower, layers in tower_layer_lists(model).items() for i in range(depths[tower])]
    trainable = [name for module in below for name, p in module.named_parameters() if p.requires_grad]
    if trainable:
        raise ValueError(
            f"The frozen prefix has trainable parameters ({trainable[:3]}...); it runs without autograd, so they "
            "would never train. Freeze them, or train without the frozen-prefix runner / cache."
        )
    names = {id(module): name for name, module in model.named_modules()}
    outside = [names[id(m)] for m in frozen_outside_modules(model, include_trainable=True) if _trains(m)]
    if outside:
        warnings.warn(
            f"{outside} train; if they feed the frozen prefix (embeddings do), they get no gradient through it.",
            stacklevel=3,
        )


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())
