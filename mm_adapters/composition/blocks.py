"""Composition blocks: what to pass to ``set_active_adapters`` for more than stacking adapters.

``Fuse("a", "b")`` runs the AdapterFusion layer trained over adapters a and b; ``BatchSplit("a", "b",
batch_sizes=[2, 3])`` gives the first 2 samples adapter a and the next 3 adapter b, in one forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class CompositionBlock:
    """Base of the blocks that :func:`mm_adapters.set_active_adapters` accepts besides adapter names."""

    def adapter_names(self) -> tuple[str, ...]:
        """Every adapter the block names, in order, each once (fusions resolve their adapters on activation)."""
        raise NotImplementedError


@dataclass(frozen=True, init=False)
class Fuse(CompositionBlock):
    """AdapterFusion (Pfeiffer et al. 2021) over ``adapters``, with the fusion layer added by ``add_fusion``.

    ``name`` picks the fusion when several fuse the same adapters; otherwise it is found from the adapters.
    """

    adapters: tuple[str, ...]
    name: str | None = None

    def __init__(self, *adapters: str, name: str | None = None) -> None:
        if len(adapters) == 1 and not isinstance(adapters[0], str):
            adapters = tuple(adapters[0])  # Fuse(["a", "b"]) as well as Fuse("a", "b")
        if not adapters or not all(isinstance(a, str) for a in adapters):
            raise ValueError(f"Fuse takes adapter names, e.g. Fuse('a', 'b'); got {adapters!r}.")
        object.__setattr__(self, "adapters", tuple(adapters))
        object.__setattr__(self, "name", name)

    def adapter_names(self) -> tuple[str, ...]:
        return self.adapters


Child = str | tuple[str, ...] | Fuse | None


@dataclass(frozen=True, init=False)
class BatchSplit(CompositionBlock):
    """Per-sample adapters in one forward pass (AdapterHub's BatchSplit): consecutive slices of the batch of
    ``batch_sizes`` samples each go through the matching child.

    A child is an adapter name, a list of names (stacked), a :class:`Fuse`, or None (the plain base model).
    The children may also come as one list, ``BatchSplit(["a", "b"], batch_sizes=[2, 3])``; to split into a single
    stacked child, write that child as a tuple. :meth:`from_sample_adapters` builds a split from per-sample names.
    """

    children: tuple[Child, ...]
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
        names: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                names.append(child)
            elif isinstance(child, tuple):
                names.extend(child)
            elif isinstance(child, Fuse):
                names.extend(child.adapters)
        return tuple(dict.fromkeys(names))
