"""Stacking: adapters added one after the other at every site (the plain list form of ``set_active_adapters``).

``set_active_adapters(model, ["a", "b"])`` and ``set_active_adapters(model, Stack("a", "b"))`` are the same; the
block form exists to nest a stack inside another block, e.g. ``Parallel(Stack("lang", "task"), "other")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..injection import set_active_adapters
from ..plugins import CompositionMethod, register_composition
from ..site import AdapterSite
from .blocks import CompositionBlock


@dataclass(frozen=True, init=False)
class Stack(CompositionBlock):
    """Adapters applied in order at every site that holds them."""

    adapters: tuple[str, ...]

    def __init__(self, *adapters: str) -> None:
        if len(adapters) == 1 and not isinstance(adapters[0], str):
            adapters = tuple(adapters[0])  # Stack(["a", "b"]) as well as Stack("a", "b")
        if not adapters or not all(isinstance(a, str) for a in adapters):
            raise ValueError(f"Stack takes adapter names, e.g. Stack('a', 'b'); got {adapters!r}.")
        object.__setattr__(self, "adapters", tuple(adapters))

    def adapter_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.adapters))


@dataclass(frozen=True)
class StackPlan:
    """Adapters added one after the other, as without composition."""

    adapters: tuple[str, ...]

    def apply(
        self, site: AdapterSite, hidden: torch.Tensor, sublayer_input: torch.Tensor | None
    ) -> torch.Tensor:
        for name in self.adapters:
            hidden = site.adapters[name](site.adapter_input(name, hidden, sublayer_input), hidden)
        return hidden


def stack_plan(names: tuple[str, ...], site: AdapterSite) -> StackPlan | None:
    present = tuple(n for n in names if n in site.adapters)
    return StackPlan(present) if present else None


class StackMethod(CompositionMethod):
    def activate(self, model, block: Stack) -> None:
        set_active_adapters(model, list(block.adapters))

    def trained(self, block: Stack) -> tuple[set[str], set[str]]:
        return set(block.adapters), set()

    def site_plan(self, block: Stack, site: AdapterSite) -> StackPlan | None:
        return stack_plan(block.adapters, site)


register_composition(Stack, StackMethod())
