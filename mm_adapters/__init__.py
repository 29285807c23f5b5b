"""mm_adapters: bottleneck adapters for frozen ViT, CLIP, Wav2Vec2 and BERT backbones."""

from . import interop  # noqa: F401  (registers AdapterHub's folders as formats)
from .composition import (
    BatchSplit,
    FeatureAdapter,
    Fuse,
    Parallel,
    Route,
    RoutedHeads,
    Stack,
    add_cross_modal_adapter,
    add_fusion,
    cross_modal_parameter_counts,
    delete_fusion,
    fusion_regularization_loss,
    list_fusions,
    load_fusion,
    plot_fusion_weights,
    record_fusion_weights,
    save_fusion,
    set_adapter_drop,
    set_row_tasks,
    split_tasks,
)
from .config import AdapterConfig
from .describe import describe
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
    "BatchSplit",
    "FeatureAdapter",
    "Fuse",
    "InputTap",
    "ParameterCount",
    "Parallel",
    "Route",
    "RoutedHeads",
    "SiteSpec",
    "Stack",
    "TowerSpec",
    "active_adapters",
    "adapted_layers",
    "adapter_state_dict",
    "add_adapter",
    "add_cross_modal_adapter",
    "add_fusion",
    "count_parameters",
    "cross_modal_parameter_counts",
    "delete_adapter",
    "delete_fusion",
    "describe",
    "detect_spec",
    "fusion_regularization_loss",
    "list_adapters",
    "list_fusions",
    "load_adapter",
    "load_fusion",
    "plot_fusion_weights",
    "record_fusion_weights",
    "register_backbone",
    "save_adapter",
    "save_fusion",
    "set_active_adapters",
    "set_adapter_drop",
    "set_row_tasks",
    "split_tasks",
    "supported_models",
]
