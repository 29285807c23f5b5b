"""Making adapted models train and run faster: frozen-prefix runner and feature cache, checkpointing, compile
checks, bf16 set-up."""

from .checkpointing import CheckpointedLayer, checkpoint_layers, uncheckpoint_layers
from .compile import adapter_graph_breaks, graph_break_reasons
from .feature_store import FeatureStore
from .precision import cast_frozen
from .prefix import (
    FrozenPrefixLayer,
    frozen_outside_modules,
    prefix_depths,
    unwrap_frozen_prefix,
    wrap_frozen_prefix,
)
from .prefix_cache import CacheStats, PrefixCache

__all__ = [
    "CacheStats",
    "CheckpointedLayer",
    "FeatureStore",
    "FrozenPrefixLayer",
    "PrefixCache",
    "adapter_graph_breaks",
    "cast_frozen",
    "checkpoint_layers",
    "frozen_outside_modules",
    "graph_break_reasons",
    "prefix_depths",
    "uncheckpoint_layers",
    "unwrap_frozen_prefix",
    "wrap_frozen_prefix",
]
