"""AdapterDrop (Rücklé et al. 2021): skip the adapters of the lowest layers, at inference or per training batch.

Dropping sets each site's ``dropped`` flag outside the forward pass; a dropped site runs its plain sublayer.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..injection import set_active_adapters
from ..plugins import composition_method
from ..state import get_state, has_adapters, iter_sites


def set_adapter_drop(model: nn.Module, layers: int | Mapping[str, int]) -> None:
    """Drop the adapters (and fusion layers) of the lowest ``layers`` layers of every tower; 0 drops none.

    A mapping gives a count per tower, e.g. ``{"vision": 4, "text": 2}`` (towers left out drop none).
    ``model`` may be any module holding the adapted backbone, such as a LightningModule.
    """
    sites = list(iter_sites(model))
    if not sites:
        raise ValueError(
            f"{type(model).__name__} holds no adapters; add one with mm_adapters.add_adapter first."
        )
    counts = dict(layers) if isinstance(layers, Mapping) else None
    towers = {site.tower for site in sites}
    if counts is not None and set(counts) - towers:
        raise ValueError(
            f"Unknown towers {sorted(set(counts) - towers)} in AdapterDrop; the adapters are in {sorted(towers)}."
        )
    for count in counts.values() if counts is not None else (layers,):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"The number of layers to drop must be a non-negative integer, got {count!r}.")
    for site in sites:
        count = counts.get(site.tower, 0) if counts is not None else layers
        site.dropped = site.layer_index < count
    _refresh_compositions(model)


def _refresh_compositions(model: nn.Module) -> None:
    """Re-activate setups whose plans depend on what is dropped (Parallel: where the batch branches)."""
    for module in model.modules():
        if has_adapters(module):
            block = get_state(module).composition
            if block is not None and composition_method(block).follows_drop:
                set_active_adapters(module, block)


def dropped_layers(model: nn.Module) -> dict[str, int]:
    """Per tower, how many of the lowest layers have their adapters dropped."""
    result: dict[str, int] = {}
    for site in iter_sites(model):
        result.setdefault(site.tower, 0)
        if site.dropped:
            result[site.tower] = max(result[site.tower], site.layer_index + 1)
    return result


def max_droppable_layers(model: nn.Module) -> int:
    """The most layers stochastic AdapterDrop drops: all but the top adapted layer (11 for a 12-layer model)."""
    indices = [site.layer_index for site in iter_sites(model)]
    if not indices:
        raise ValueError(
            f"{type(model).__name__} holds no adapters; add one with mm_adapters.add_adapter first."
        )
    return max(indices)


def drop_random_layers(model: nn.Module, rng: random.Random, max_layers: int | None = None) -> int:
    """Stochastic AdapterDrop for one training batch: drop the lowest n layers, n uniform in 0..``max_layers``
    (default :func:`max_droppable_layers`). Returns n. Call it between batches, never inside forward."""
    upper = max_droppable_layers(model) if max_layers is None else max_layers
    count = rng.randint(0, upper)
    set_adapter_drop(model, count)
    return count


@dataclass
class DropTiming:
    """Seconds per call for each AdapterDrop setting, one entry per round (rounds ran the settings back to back)."""

    seconds: dict[int, list[float]]

    def median(self, layers: int) -> float:
        return statistics.median(self.seconds[layers])

    def speedup(self, layers: int, reference: int = 0) -> float:
        """Median over rounds of ``time(reference) / time(layers)``: above 1 means dropping is faster."""
        pairs = zip(self.seconds[reference], self.seconds[layers], strict=True)
        return statistics.median(ref / t for ref, t in pairs)


def time_adapter_drop(
    model: nn.Module,
    forward: Callable[[], Any],
    drops: Sequence[int] = (0, 5),
    repeats: int = 10,
    warmup: int = 2,
) -> DropTiming:
    """Time ``forward()`` under each AdapterDrop setting side by side: the settings alternate within every round,
    so drift in machine load hits all of them alike. Leaves no layers dropped."""
    times: dict[int, list[float]] = {count: [] for count in drops}
    try:
        for round_index in range(warmup + repeats):
            for count in drops:
                set_adapter_drop(model, count)
                start = time.perf_counter()
                forward()
                if round_index >= warmup:
                    times[count].append(time.perf_counter() - start)
    finally:
        set_adapter_drop(model, 0)
    return DropTiming(times)
