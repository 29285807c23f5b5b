from . import families  # noqa: F401  (registers the built-in backbone families)
from .base import BackboneSpec, SiteSpec, TowerSpec, resolve_parent, resolve_path
from .registry import BACKBONE_SPECS, check_spec, detect_spec, register_backbone, supported_models

__all__ = [
    "BACKBONE_SPECS",
    "BackboneSpec",
    "SiteSpec",
    "TowerSpec",
    "check_spec",
    "detect_spec",
    "register_backbone",
    "resolve_parent",
    "resolve_path",
    "supported_models",
]
