"""What the composition methods share: children of a block (an adapter name, a list of names, another block,
or None), and activating a block with one plan per site.

Trainable after activation: adapters named directly (alone, or in a stack) and the fusion layers of every ``Fuse``;
the adapters inside a ``Fuse`` are frozen (AdapterFusion's stage 2). Everything else is frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..plugins import composition_method
from ..site import AdapterSite
from ..state import AdapterState, get_state, iter_sites
from .stack import stack_plan

Child = Any
"""An adapter name, a tuple of names (stacked), a composition block, or None (the plain base model)."""


def child_names(child: Child) -> tuple[str, ...]:
    if child is None:
        return ()
    if isinstance(child, str):
        return (child,)
    if isinstance(child, tuple):
        return child
    return child.adapter_names()


def resolve_child(state: AdapterState, child: Child) -> Child:
    if child is None or isinstance(child, (str, tuple)):
        return child
    return composition_method(child).resolve(state, child)


def child_trained(child: Child) -> tuple[set[str], set[str]]:
    if child is None:
        return set(), set()
    if isinstance(child, (str, tuple)):
        return set(child_names(child)), set()
    return composition_method(child).trained(child)


def child_plan(child: Child, site: AdapterSite) -> Any:
    if child is None:
        return None
    if isinstance(child, (str, tuple)):
        return stack_plan(child_names(child), site)
    return composition_method(child).site_plan(child, site)


def union_trained(children) -> tuple[set[str], set[str]]:
    adapters: set[str] = set()
    fusions: set[str] = set()
    for child in children:
        more_adapters, more_fusions = child_trained(child)
        adapters |= more_adapters
        fusions |= more_fusions
    return adapters, fusions


def activate_block(
    model: nn.Module, block: Any, plan_for: Callable[[Any, AdapterSite], Any] | None = None
) -> Any:
    """Make ``block`` the model's setup: resolve it, check its adapters exist, give each site its plan
    (``plan_for(block, site)``, default the method's ``site_plan``) and set what trains. Returns the resolved block."""
    state = get_state(model)
    method = composition_method(block)
    block = method.resolve(state, block)
    names = block.adapter_names()
    missing = [n for n in names if n not in state.configs]
    if missing:
        raise ValueError(f"No adapter named {missing} on this model; it has {sorted(state.configs)}.")
    trained_adapters, trained_fusions = method.trained(block)
    plan_for = plan_for or method.site_plan
    state.remove_hooks()
    state.active = names
    state.composition = block
    for site in iter_sites(model):
        plan = plan_for(block, site)
        site.set_active(names if plan is not None else (), plan)
        site.set_trainable(trained_adapters)
        for fusion_name, fusion in site.fusions.items():
            fusion.requires_grad_(fusion_name in trained_fusions)
    return block


def activate_composition(model: nn.Module, block: Any) -> None:
    """Activate any registered composition block (what ``set_active_adapters`` does with a block)."""
    composition_method(block).activate(model, block)
