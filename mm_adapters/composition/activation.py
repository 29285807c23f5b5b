"""Activating a composition block: check it against the model, give every site its plan, set what trains.

Trainable after activation: adapters named directly (alone, or in a stacked list) and the fusion layers of every
:class:`Fuse`; the adapters inside a ``Fuse`` are frozen (AdapterFusion's stage 2). Everything else is frozen.
"""

from __future__ import annotations

from torch import nn

from ..site import AdapterSite
from ..state import AdapterState, get_state, iter_sites
from .blocks import BatchSplit, CompositionBlock, Fuse
from .plans import FusePlan, SplitPlan, StackPlan


def activate_composition(model: nn.Module, block: CompositionBlock) -> None:
    state = get_state(model)
    block = _resolve(state, block)
    names = block.adapter_names()
    missing = [n for n in names if n not in state.configs]
    if missing:
        raise ValueError(f"No adapter named {missing} on this model; it has {sorted(state.configs)}.")
    trained_adapters, trained_fusions = _trained(block)
    state.active = names
    state.composition = block
    for site in iter_sites(model):
        plan = _site_plan(block, site)
        site.set_active(names if plan is not None else (), plan)
        for adapter_name, adapter in site.adapters.items():
            adapter.requires_grad_(adapter_name in trained_adapters)
        for fusion_name, fusion in site.fusions.items():
            fusion.requires_grad_(fusion_name in trained_fusions)


def fusion_for(state: AdapterState, fuse: Fuse) -> str:
    """The name of the fusion layer a :class:`Fuse` means: its ``name``, or the one fusion over its adapters."""
    if fuse.name is not None:
        if fuse.name not in state.fusions:
            raise ValueError(
                f"No fusion named {fuse.name!r}; this model has {sorted(state.fusions)} (add_fusion)."
            )
        if set(state.fusions[fuse.name]) != set(fuse.adapters):
            raise ValueError(
                f"Fusion {fuse.name!r} fuses {list(state.fusions[fuse.name])}, not {list(fuse.adapters)}."
            )
        return fuse.name
    matches = [name for name, fused in state.fusions.items() if set(fused) == set(fuse.adapters)]
    if not matches:
        raise ValueError(
            f"No fusion over {list(fuse.adapters)}; add one with mm_adapters.add_fusion(model, {list(fuse.adapters)}) "
            "or load_fusion."
        )
    if len(matches) > 1:
        raise ValueError(
            f"Fusions {matches} all fuse {list(fuse.adapters)}; pick one with Fuse(..., name=...)."
        )
    return matches[0]


# -- internals ------------------------------------------------------------------------------------------------------
def _resolve(state: AdapterState, block: CompositionBlock) -> CompositionBlock:
    """The block with every Fuse named and listing its adapters in the fusion's weight order."""
    if isinstance(block, Fuse):
        name = fusion_for(state, block)
        return Fuse(*state.fusions[name], name=name)
    if isinstance(block, BatchSplit):
        children = [_resolve(state, c) if isinstance(c, Fuse) else c for c in block.children]
        return BatchSplit(*children, batch_sizes=block.batch_sizes)
    raise TypeError(f"Unknown composition block {block!r}; use mm_adapters.Fuse or mm_adapters.BatchSplit.")


def _trained(block: CompositionBlock) -> tuple[set[str], set[str]]:
    children = block.children if isinstance(block, BatchSplit) else (block,)
    adapters, fusions = set(), set()
    for child in children:
        if isinstance(child, Fuse):
            fusions.add(child.name)
        elif isinstance(child, str):
            adapters.add(child)
        elif child is not None:
            adapters.update(child)
    return adapters, fusions


def _site_plan(block: CompositionBlock, site: AdapterSite) -> StackPlan | FusePlan | SplitPlan | None:
    if isinstance(block, BatchSplit):
        plans = tuple(_child_plan(child, site) for child in block.children)
        return SplitPlan(plans, block.batch_sizes) if any(plans) else None
    return _child_plan(block, site)


def _child_plan(child, site: AdapterSite) -> StackPlan | FusePlan | None:
    if child is None:
        return None
    if isinstance(child, Fuse):
        present = tuple(n for n in child.adapters if n in site.adapters)
        return FusePlan(child.name, present) if present and child.name in site.fusions else None
    names = (child,) if isinstance(child, str) else child
    present = tuple(n for n in names if n in site.adapters)
    return StackPlan(present) if present else None
