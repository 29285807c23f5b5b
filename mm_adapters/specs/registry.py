"""The registry of backbone specs and automatic spec detection."""

from __future__ import annotations

from torch import nn

from .base import BackboneSpec, resolve_path

BACKBONE_SPECS: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone family; after this, :func:`mm_adapters.add_adapter` recognises its model classes."""
    BACKBONE_SPECS[spec.family] = spec
    return spec


def supported_models() -> list[str]:
    return sorted(name for spec in BACKBONE_SPECS.values() for name in spec.class_names)


def detect_spec(model: nn.Module) -> BackboneSpec:
    """The spec whose class names include the model's class, checked against the model's modules."""
    for spec in BACKBONE_SPECS.values():
        if spec.matches(model):
            check_spec(model, spec)
            return spec
    raise ValueError(
        f"mm_adapters has no backbone spec for {type(model).__name__}. Supported model classes: "
        f"{', '.join(supported_models())}. Pass the bare backbone (e.g. model.bert, not BertForSequenceClassification), "
        "or describe yours with mm_adapters.BackboneSpec and pass it as spec=... or register it with "
        "mm_adapters.register_backbone."
    )


def check_spec(model: nn.Module, spec: BackboneSpec) -> None:
    """Raise a clear error if any path of the spec does not resolve on the model."""
    for tower_name, tower in spec.towers.items():
        try:
            layers = resolve_path(model, tower.layers)
            block = layers[0]
            for site in (tower.attn, tower.ffn):
                resolve_path(block, site.output)
                if site.input:
                    resolve_path(block, site.input)
                if site.norm:
                    resolve_path(block, site.norm)
            resolve_path(block, tower.hidden_size)
        except (AttributeError, IndexError, TypeError) as error:
            raise ValueError(
                f"Backbone spec {spec.family!r} does not fit {type(model).__name__} (tower {tower_name!r}): {error}"
            ) from error
