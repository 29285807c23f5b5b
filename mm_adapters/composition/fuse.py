"""AdapterFusion as a composition: ``Fuse("a", "b")`` runs the fusion layer trained over adapters a and b.

Adding, saving and loading fusion layers is in ``fusion.py`` / ``fusion_io.py``; the layer itself in
``fusion_layer.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..plugins import CompositionMethod, register_composition
from ..site import AdapterSite
from ..state import AdapterState
from .activation import activate_block
from .blocks import CompositionBlock


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


@dataclass(frozen=True)
class FusePlan:
    """The fusion layer ``fusion`` attends over the outputs of ``adapters``."""

    fusion: str
    adapters: tuple[str, ...]

    def apply(
        self, site: AdapterSite, hidden: torch.Tensor, sublayer_input: torch.Tensor | None
    ) -> torch.Tensor:
        inputs = {n: site.adapter_input(n, hidden, sublayer_input) for n in self.adapters}
        deltas = [site.adapters[n](inputs[n]) for n in self.adapters]
        # the query is what the last fused adapter reads (AdapterHub); the sublayer output for parallel adapters
        last = self.adapters[-1]
        query = hidden if site.adapters[last].parallel else inputs[last]
        return site.fusions[self.fusion](hidden, torch.stack(deltas, dim=-2), query=query)


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


class FuseMethod(CompositionMethod):
    def activate(self, model, block: Fuse) -> None:
        activate_block(model, block)

    def resolve(self, state: AdapterState, block: Fuse) -> Fuse:
        """Named, and listing its adapters in the fusion's weight order."""
        name = fusion_for(state, block)
        return Fuse(*state.fusions[name], name=name)

    def trained(self, block: Fuse) -> tuple[set[str], set[str]]:
        return set(), {block.name}

    def site_plan(self, block: Fuse, site: AdapterSite) -> FusePlan | None:
        present = tuple(n for n in block.adapters if n in site.adapters)
        return FusePlan(block.name, present) if present and block.name in site.fusions else None


register_composition(Fuse, FuseMethod())
