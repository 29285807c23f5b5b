"""Per-sample adapters in one forward pass: ``BatchSplit("a", "b", batch_sizes=[2, 3])`` gives the first 2 samples
adapter a and the next 3 adapter b (AdapterHub's BatchSplit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..plugins import CompositionMethod, register_composition
from ..site import AdapterSite
from ..state import AdapterState
from .activation import activate_block, child_names, child_plan, resolve_child, union_trained
from .blocks import CompositionBlock
from .fuse import Fuse


@dataclass(frozen=True, init=False)
class BatchSplit(CompositionBlock):
    """Consecutive slices of the batch of ``batch_sizes`` samples each go through the matching child.

    A child is an adapter name, a list of names (stacked), a :class:`Fuse`, or None (the plain base model).
    The children may also come as one list, ``BatchSplit(["a", "b"], batch_sizes=[2, 3])``; to split into a single
    stacked child, write that child as a tuple. :meth:`from_sample_adapters` builds a split from per-sample names.
    """

    children: tuple[Any, ...]
    batch_sizes: tuple[int, ...]

    def __init__(self, *children: str | Sequence[str] | Fuse | None, batch_sizes: Sequence[int]) -> None:
        if len(children) == 1 and isinstance(children[0], list):
            children = tuple(children[0])  # BatchSplit(["a", "b"], batch_sizes=...) as well
        children = tuple(c if c is None or isinstance(c, (str, Fuse)) else tuple(c) for c in children)
        sizes = tuple(batch_sizes)
        if not children or len(children) != len(sizes):
            raise ValueError(
                f"BatchSplit needs one batch size per child: {len(children)} children, sizes {sizes}."
            )
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in sizes):
            raise ValueError(f"batch_sizes must be non-negative integers, got {sizes}.")
        for child in children:
            if isinstance(child, tuple) and not all(isinstance(n, str) for n in child):
                raise ValueError(f"A BatchSplit child list must hold adapter names, got {child!r}.")
        object.__setattr__(self, "children", children)
        object.__setattr__(self, "batch_sizes", sizes)

    @classmethod
    def from_sample_adapters(cls, adapters: Sequence[str | None]) -> BatchSplit:
        """The split for a batch whose i-th sample uses ``adapters[i]``; equal neighbours form one slice.

        Sort the batch by adapter first to get one slice per adapter.
        """
        children: list[str | None] = []
        sizes: list[int] = []
        for adapter in adapters:
            if children and children[-1] == adapter:
                sizes[-1] += 1
            else:
                children.append(adapter)
                sizes.append(1)
        return cls(*children, batch_sizes=sizes)

    def adapter_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for child in self.children for name in child_names(child)))


@dataclass(frozen=True)
class SplitPlan:
    """Consecutive batch slices of ``batch_sizes`` samples each go through the matching plan (None: unchanged)."""

    plans: tuple[Any, ...]
    batch_sizes: tuple[int, ...]

    def apply(
        self, site: AdapterSite, hidden: torch.Tensor, sublayer_input: torch.Tensor | None
    ) -> torch.Tensor:
        if hidden.shape[0] != sum(self.batch_sizes):
            raise ValueError(
                f"BatchSplit batch_sizes {list(self.batch_sizes)} add up to {sum(self.batch_sizes)} samples, but the "
                f"batch has {hidden.shape[0]}; activate a BatchSplit that matches this batch."
            )
        outputs, start = [], 0
        for plan, size in zip(self.plans, self.batch_sizes, strict=True):
            part = hidden[start : start + size]
            if plan is not None:
                part_input = None if sublayer_input is None else sublayer_input[start : start + size]
                part = plan.apply(site, part, part_input)
            outputs.append(part)
            start += size
        return torch.cat(outputs, dim=0)


class BatchSplitMethod(CompositionMethod):
    def activate(self, model, block: BatchSplit) -> None:
        activate_block(model, block)

    def resolve(self, state: AdapterState, block: BatchSplit) -> BatchSplit:
        children = [resolve_child(state, child) for child in block.children]
        return BatchSplit(*children, batch_sizes=block.batch_sizes)

    def trained(self, block: BatchSplit) -> tuple[set[str], set[str]]:
        return union_trained(block.children)

    def site_plan(self, block: BatchSplit, site: AdapterSite) -> SplitPlan | None:
        plans = tuple(child_plan(child, site) for child in block.children)
        return SplitPlan(plans, block.batch_sizes) if any(p is not None for p in plans) else None


register_composition(BatchSplit, BatchSplitMethod())
