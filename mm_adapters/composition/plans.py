"""What one adapter site does under a composition block, worked out once when the block is activated.

A plan only names adapters and fusion layers present at its site; ``AdapterSite.adapt`` calls
``plan.apply(site, hidden, sublayer_input)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..site import AdapterSite


def _adapter_input(site: AdapterSite, name: str, hidden: torch.Tensor, sublayer_input: torch.Tensor | None):
    return site.adapter_input(name, hidden, sublayer_input)


@dataclass(frozen=True)
class StackPlan:
    """Adapters added one after the other, as without composition."""

    adapters: tuple[str, ...]

    def apply(
        self, site: AdapterSite, hidden: torch.Tensor, sublayer_input: torch.Tensor | None
    ) -> torch.Tensor:
        for name in self.adapters:
            hidden = hidden + site.adapters[name](_adapter_input(site, name, hidden, sublayer_input))
        return hidden


@dataclass(frozen=True)
class FusePlan:
    """The fusion layer ``fusion`` attends over the outputs of ``adapters``."""

    fusion: str
    adapters: tuple[str, ...]

    def apply(
        self, site: AdapterSite, hidden: torch.Tensor, sublayer_input: torch.Tensor | None
    ) -> torch.Tensor:
        inputs = {n: _adapter_input(site, n, hidden, sublayer_input) for n in self.adapters}
        deltas = [site.adapters[n](inputs[n]) for n in self.adapters]
        # the query is what the last fused adapter reads (AdapterHub); the sublayer output for parallel adapters
        last = self.adapters[-1]
        query = hidden if site.adapters[last].parallel else inputs[last]
        return site.fusions[self.fusion](hidden, torch.stack(deltas, dim=-2), query=query)


@dataclass(frozen=True)
class SplitPlan:
    """Consecutive batch slices of ``batch_sizes`` samples each go through the matching plan (None: unchanged)."""

    plans: tuple[StackPlan | FusePlan | None, ...]
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
