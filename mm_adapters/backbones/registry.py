"""Task wrappers by name; a family entry (``mm_adapters.specs.FAMILIES``) names the wrapper that serves it."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..specs import FAMILIES, base_model_of, detect_spec
from .base import Backbone, Preprocessing

BACKBONE_WRAPPERS: dict[str, type[Backbone]] = {}


def register_wrapper(*names: str) -> Callable[[type[Backbone]], type[Backbone]]:
    """Class decorator: ``@register_wrapper("hf_vit")`` makes the class the task wrapper named ``hf_vit``, used by
    every family entry whose ``wrapper`` is that name (and by a family of that name registered without one)."""

    def register(cls: type[Backbone]) -> type[Backbone]:
        for name in names:
            BACKBONE_WRAPPERS[name] = cls
        cls.family = cls.__dict__.get("family") or names[0]  # its own, not a base wrapper's
        return cls

    return register


def wrapper_for(model: nn.Module) -> tuple[type[Backbone], nn.Module]:
    """The task wrapper class for ``model`` and the module it wraps: a task-head model's base model (the wrappers
    read encoder outputs such as ``last_hidden_state``), else the model itself."""
    spec = detect_spec(model, auto=False)
    family = FAMILIES.get(spec.family)
    name = family.wrapper if family is not None and family.wrapper else spec.family
    if name not in BACKBONE_WRAPPERS:
        raise ValueError(
            f"No task wrapper for backbone family {spec.family!r}; families with one: "
            f"{sorted(f.name for f in FAMILIES.values() if f.wrapper)}. Subclass mm_adapters.backbones.Backbone, "
            "register it with @register_wrapper and name it in the family entry's wrapper=."
        )
    return BACKBONE_WRAPPERS[name], base_model_of(model)


def wrap_backbone(model: nn.Module, preprocessing: Preprocessing | None = None, name: str = "") -> Backbone:
    """Wrap a spec-supported model (e.g. ``ViTModel``, open_clip ``CLIP``; a task-head model is wrapped through its
    base model, ``ViTForImageClassification().vit``) for the task modules."""
    wrapper, module = wrapper_for(model)
    return wrapper(module, preprocessing, name)
