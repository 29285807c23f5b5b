"""Task heads in an export folder: which heads an export knows, how ``head_config.json`` describes one that is not a
single Linear, and rebuilding an untrained head of the saved shape."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..composition import FeatureAdapter
from ..errors import AdapterLoadError
from ..io import HEAD_CONFIG_FILE, HEAD_FILE, read_json_object, read_tensors
from ..layers.bottleneck import ACTIVATION_MODULES

FEATURE_ADAPTERS = "feature_adapters"


def head_description(head: nn.Module | None) -> dict[str, Any] | None:
    """What ``head_config.json`` says about a head that is not a single Linear (None for a Linear or no head).

    Raises ValueError for a head :func:`build_head` could not rebuild."""
    if head is None or isinstance(head, nn.Linear):
        return None
    if isinstance(head, nn.ModuleDict) and all(isinstance(m, FeatureAdapter) for m in head.values()):
        return {
            "kind": FEATURE_ADAPTERS,
            "modules": {key: _feature_adapter_args(m) for key, m in head.items()},
        }
    raise ValueError(
        f"export_adapter knows linear heads and a ModuleDict of FeatureAdapter, not {type(head).__name__}; save "
        "that head with safetensors yourself and pass it to load_adapter(head=...) when loading."
    )


def build_head(folder: str | os.PathLike) -> nn.Module | None:
    """An untrained head shaped like the one saved in ``folder`` (None when it has no head.safetensors)."""
    folder = Path(folder)
    path = folder / HEAD_FILE
    if not path.is_file():
        return None
    description_path = folder / HEAD_CONFIG_FILE
    if description_path.is_file():
        description = read_json_object(description_path, "head")
        if description.get("kind") != FEATURE_ADAPTERS:
            raise AdapterLoadError(f"{description_path} describes a head of kind {description.get('kind')!r}; "
                                   f"this version knows {FEATURE_ADAPTERS!r} and linear heads.")  # fmt: skip
        return nn.ModuleDict({key: _feature_adapter(**args) for key, args in description["modules"].items()})
    tensors = read_tensors(path)
    if set(tensors) != {"weight", "bias"} or tensors["weight"].dim() != 2:
        raise AdapterLoadError(
            f"{path} holds a head that is not a single Linear (tensors {sorted(tensors)[:6]}) and {folder} has no "
            f"{HEAD_CONFIG_FILE} saying what it is; build that head yourself and load it with "
            "mm_adapters.load_adapter(model, folder, head=your_head)."
        )
    weight = tensors["weight"]
    return nn.Linear(weight.shape[1], weight.shape[0])


def _feature_adapter_args(adapter: FeatureAdapter) -> dict[str, Any]:
    activation = next(name for name, cls in ACTIVATION_MODULES.items() if type(adapter.act) is cls)
    return {
        "dim": adapter.down.in_features,
        "bottleneck": adapter.down.out_features,
        "alpha": adapter.alpha,
        "activation": activation,
    }


def _feature_adapter(dim: int, bottleneck: int, alpha: float, activation: str) -> FeatureAdapter:
    adapter = FeatureAdapter(dim, reduction_factor=dim / bottleneck, alpha=alpha, activation=activation)
    if adapter.down.out_features != bottleneck:  # dim / (dim / b) rounded down below b
        adapter.down, adapter.up = nn.Linear(dim, bottleneck), nn.Linear(bottleneck, dim)
    return adapter
