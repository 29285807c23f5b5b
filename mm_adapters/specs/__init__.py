from . import families  # noqa: F401  (registers the built-in backbone families)
from .auto import NoAutoSpec, auto_spec, find_towers
from .base import BackboneSpec, SiteSpec, TowerSpec, block_hidden_size, resolve_parent, resolve_path
from .family import DEMO, TINY, Demo, Example, Family, ModelSize
from .registry import (
    BACKBONE_SPECS,
    FAMILIES,
    base_model_of,
    check_spec,
    detect_spec,
    find_spec,
    register_backbone,
    register_family,
    supported_models,
)

__all__ = [
    "NoAutoSpec",
    "auto_spec",
    "find_towers",
    "BACKBONE_SPECS",
    "DEMO",
    "FAMILIES",
    "TINY",
    "BackboneSpec",
    "Demo",
    "Example",
    "Family",
    "ModelSize",
    "SiteSpec",
    "TowerSpec",
    "base_model_of",
    "block_hidden_size",
    "check_spec",
    "detect_spec",
    "find_spec",
    "register_backbone",
    "register_family",
    "resolve_parent",
    "resolve_path",
    "supported_models",
]
