"""Which :class:`Backbone` wrapper serves which spec family: one entry per family."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..specs import detect_spec
from .base import Backbone, Preprocessing

BACKBONE_WRAPPERS: dict[str, type[Backbone]] = {}


def register_wrapper(*families: str) -> Callable[[type[Backbone]], type[Backbone]]:
    """Class decorator: ``@register_wrapper("hf_vit")`` makes :func:`wrap_backbone` use the class for that family."""

    def register(cls: type[Backbone]) -> type[Backbone]:
        for family in families:
            BACKBONE_WRAPPERS[family] = cls
        cls.family = cls.family or families[0]
        return cls

    return register


def wrap_backbone(model: nn.Module, preprocessing: Preprocessing | None = None, name: str = "") -> Backbone:
    """Wrap a raw spec-supported model (e.g. ``ViTModel``, open_clip ``CLIP``) for the task modules."""
    family = detect_spec(model).family
    if family not in BACKBONE_WRAPPERS:
        raise ValueError(
            f"No task wrapper for backbone family {family!r}; known families: {sorted(BACKBONE_WRAPPERS)}. "
            "Subclass mm_adapters.backbones.Backbone and register it with @register_wrapper."
        )
    return BACKBONE_WRAPPERS[family](model, preprocessing, name)
