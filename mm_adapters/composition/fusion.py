"""Adding and removing AdapterFusion layers over trained adapters."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..injection import set_active_adapters
from ..plugins import composition_method
from ..state import check_name, get_state, has_adapters, iter_sites
from .activation import activate_composition
from .fuse import Fuse
from .fusion_layer import FusionLayer


def add_fusion(
    model: nn.Module, adapter_names: Sequence[str], name: str | None = None, *, set_active: bool = True
) -> str:
    """Add a fusion layer over ``adapter_names`` at every site holding any of them, and return its name
    (default: the adapter names joined by ``-``).

    With ``set_active`` it becomes the active setup, ``Fuse(*adapter_names)``: only the fusion layers train, the
    backbone and the fused adapters are frozen (AdapterFusion's second stage; the task head is yours).
    """
    state = get_state(model)
    adapters = tuple(adapter_names) if not isinstance(adapter_names, str) else (adapter_names,)
    missing = [a for a in adapters if a not in state.configs]
    if not adapters or missing:
        raise ValueError(
            f"Cannot fuse {list(adapters)}: no adapter named {missing}; this model has {sorted(state.configs)}."
        )
    if len(set(adapters)) != len(adapters):
        raise ValueError(f"An adapter is listed twice in {list(adapters)}.")
    name = check_name(name if name is not None else "-".join(adapters))
    if name in state.fusions:
        raise ValueError(
            f"A fusion named {name!r} already exists; delete_fusion it first or pick another name."
        )
    for site in iter_sites(model):
        if any(a in site.adapters for a in adapters):
            device = next(next(site.adapters[a].parameters()).device for a in adapters if a in site.adapters)
            site.fusions[name] = FusionLayer(site.hidden_size).to(device)
    state.fusions[name] = adapters
    if set_active:
        activate_composition(model, Fuse(*adapters, name=name))
    else:  # re-apply the current setup so the new fusion layers are frozen
        set_active_adapters(model, state.setup)
    return name


def delete_fusion(model: nn.Module, name: str) -> None:
    """Remove fusion ``name`` (its adapters stay). It must not be part of the active setup."""
    state = get_state(model)
    if name not in state.fusions:
        raise ValueError(f"No fusion named {name!r}; this model has {sorted(state.fusions)}.")
    if _uses_fusion(state.composition, name):
        raise ValueError(
            f"Fusion {name!r} is part of the active {state.composition!r}; activate another setup first."
        )
    for site in iter_sites(model):
        if name in site.fusions:
            del site.fusions[name]
    del state.fusions[name]


def list_fusions(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """Fusion names and the adapters each fuses, in weight order."""
    return dict(get_state(model).fusions) if has_adapters(model) else {}


def fusion_regularization_loss(model: nn.Module, name: str) -> torch.Tensor:
    """Sum over sites of ``||W_value - I||^2`` for fusion ``name``; AdapterHub adds ``0.01 *`` this to the task loss."""
    layers = [site.fusions[name] for site in iter_sites(model) if name in site.fusions]
    if not layers:
        raise ValueError(f"No fusion named {name!r}; this model has {sorted(get_state(model).fusions)}.")
    return torch.stack([layer.regularization() for layer in layers]).sum()


def _uses_fusion(block: object, name: str) -> bool:
    return block is not None and name in composition_method(block).trained(block)[1]
