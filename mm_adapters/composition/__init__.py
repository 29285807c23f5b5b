"""Adapter composition: stacking, AdapterFusion, per-sample adapters (BatchSplit), many tasks in one pass
(Parallel), per-row task routing for mixed-task batches (Route), AdapterDrop and cross-modal adapters.

Each composition method is one file registered with :func:`mm_adapters.plugins.register_composition`: ``stack.py``,
``fuse.py``, ``batch_split.py``, ``parallel.py``, ``route.py``.

The Lightning callback for stochastic AdapterDrop lives in :mod:`mm_adapters.composition.drop_callback`.
"""

from .batch_split import BatchSplit
from .blocks import CompositionBlock
from .cross_modal import (
    SharedBottleneckAdapter,
    add_cross_modal_adapter,
    cross_modal_parameter_counts,
    embedding_dim,
    shared_bottleneck_size,
)
from .drop import (
    DropTiming,
    drop_random_layers,
    dropped_layers,
    max_droppable_layers,
    set_adapter_drop,
    time_adapter_drop,
)
from .feature_adapter import FeatureAdapter
from .fuse import Fuse
from .fusion import add_fusion, delete_fusion, fusion_regularization_loss, list_fusions
from .fusion_io import fusion_state_dict, load_fusion, save_fusion
from .fusion_layer import FusionLayer
from .fusion_weights import plot_fusion_weights, record_fusion_weights
from .parallel import Parallel, split_tasks
from .route import Route, set_row_tasks
from .routed_heads import RoutedHeads
from .stack import Stack

__all__ = [
    "BatchSplit",
    "CompositionBlock",
    "DropTiming",
    "FeatureAdapter",
    "Fuse",
    "FusionLayer",
    "Parallel",
    "Route",
    "RoutedHeads",
    "SharedBottleneckAdapter",
    "Stack",
    "add_cross_modal_adapter",
    "add_fusion",
    "cross_modal_parameter_counts",
    "delete_fusion",
    "drop_random_layers",
    "dropped_layers",
    "embedding_dim",
    "fusion_regularization_loss",
    "fusion_state_dict",
    "list_fusions",
    "load_fusion",
    "max_droppable_layers",
    "plot_fusion_weights",
    "record_fusion_weights",
    "save_fusion",
    "set_adapter_drop",
    "set_row_tasks",
    "shared_bottleneck_size",
    "split_tasks",
    "time_adapter_drop",
]
