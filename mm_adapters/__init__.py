"""mm_adapters: bottleneck adapters for frozen ViT, CLIP, Wav2Vec2 and BERT backbones."""

from .config import AdapterConfig
from .errors import AdapterLoadError
from .injection import (
    active_adapters,
    adapted_layers,
    add_adapter,
    delete_adapter,
    list_adapters,
    set_active_adapters,
)
from .parameters import ParameterCount, count_parameters
from .serialization import adapter_state_dict, load_adapter, save_adapter
from .site import AdapterSite, InputTap
from .specs import BackboneSpec, SiteSpec, TowerSpec, detect_spec, register_backbone, supported_models

__version__ = "0.1.0"

__all__ = [
    "AdapterConfig",
    "AdapterLoadError",
    "AdapterSite",
    "BackboneSpec",
    "InputTap",
    "ParameterCount",
    "SiteSpec",
    "TowerSpec",
    "active_adapters",
    "adapted_layers",
    "adapter_state_dict",
    "add_adapter",
    "count_parameters",
    "delete_adapter",
    "detect_spec",
    "list_adapters",
    "load_adapter",
    "register_backbone",
    "save_adapter",
    "set_active_adapters",
    "supported_models",
]
