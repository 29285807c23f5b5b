"""Many tasks on one input in one forward pass: ``set_active_adapters(model, Parallel("a", "b", ...))``.

As AdapterHub's ``Parallel``, the batch is replicated once per task where the tasks' adapters start to differ;
unlike it, the replication is placed by the tasks themselves: every site below the lowest site where the tasks'
plans differ (per tower; AdapterDrop moves it up) runs once for the whole batch, and since the backbone is frozen
there, without autograd. From that site on, rows ``i*B .. (i+1)*B - 1`` are task ``i`` (task-major, N*B rows) and
each task's rows meet only its own adapters. A tower in which the tasks never differ keeps B rows.

The model's outputs carry N*B rows where a tower branched; :func:`split_tasks` returns them per task, e.g.::

    set_active_adapters(model, Parallel("sst2", "mnli"))
    hidden = model(**batch).last_hidden_state              # 2B x T x D
    per_task = split_tasks(model, hidden, batch_size=B)     # {"sst2": B x T x D, "mnli": B x T x D}

Each result equals running that task alone (``set_active_adapters(model, "sst2")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..plugins import CompositionMethod, register_composition
from ..site import AdapterSite
from ..specs import tower_blocks
from ..state import AdapterState, get_state, iter_sites
from .activation import activate_block, child_names, child_plan, resolve_child, union_trained
from .blocks import CompositionBlock
from .fuse import Fuse
from .parallel_branch import TowerBranch, site_order
from .stack import Stack


@dataclass(frozen=True, init=False)
class Parallel(CompositionBlock):
    """One branch per task on the same input: each child is an adapter name, a :class:`Stack` (or a tuple of
    names) or a :class:`Fuse`. ``labels`` names the branches in :func:`split_tasks` (an adapter's name, a stack's
    last adapter, a fusion's name)."""

    children: tuple[Any, ...]

    def __init__(self, *children: str | Stack | Fuse | tuple[str, ...]) -> None:
        if len(children) == 1 and isinstance(children[0], list):
            children = tuple(children[0])  # Parallel(["a", "b"]) as well
        children = tuple(Stack(*c) if isinstance(c, (tuple, list)) else c for c in children)
        if not children:
            raise ValueError("Parallel needs at least one branch, e.g. Parallel('a', 'b').")
        for child in children:
            if not isinstance(child, (str, Stack, Fuse)):
                raise ValueError(f"A Parallel branch is an adapter name, a Stack or a Fuse; got {child!r}.")
        object.__setattr__(self, "children", children)
        labels = self.labels
        if len(set(labels)) != len(labels):
            raise ValueError(f"Parallel branches must have distinct labels, got {list(labels)}.")

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(_label(child) for child in self.children)

    def adapter_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(name for child in self.children for name in child_names(child)))


@dataclass(frozen=True)
class ParallelPlan:
    """At and after the branch site: the i-th of N equal row blocks goes through ``plans[i]`` (None: unchanged)."""

    plans: tuple[Any, ...]

    def apply(
        self, site: AdapterSite, hidden: torch.Tensor, sublayer_input: torch.Tensor | None
    ) -> torch.Tensor:
        n, rows = len(self.plans), hidden.shape[0]
        if rows % n:
            raise RuntimeError(
                f"Parallel with {n} branches found {rows} rows at {site.tower} layer {site.layer_index} {site.site}; "
                "the batch was not replicated here (was a layer called outside the model's forward?)."
            )
        size = rows // n
        parts = []
        for i, plan in enumerate(self.plans):
            part = hidden[i * size : (i + 1) * size]
            if plan is not None:
                part_input = None if sublayer_input is None else sublayer_input[i * size : (i + 1) * size]
                part = plan.apply(site, part, part_input)
            parts.append(part)
        return torch.cat(parts, dim=0)


def split_tasks(model: nn.Module, output: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """Per task (by :attr:`Parallel.labels`), its rows of a model output under the active ``Parallel``: the i-th
    block of ``batch_size`` rows of an N*B-row output, or the whole output where the tower never branched."""
    block = get_state(model).composition
    if not isinstance(block, Parallel):
        raise ValueError(
            f"split_tasks needs an active Parallel setup; this model runs {get_state(model).setup!r}."
        )
    return split_rows(output, block.labels, batch_size)


def split_rows(output: torch.Tensor, labels: tuple[str, ...], batch_size: int) -> dict[str, torch.Tensor]:
    n, rows = len(labels), output.shape[0]
    if rows == n * batch_size:
        return {label: output[i * batch_size : (i + 1) * batch_size] for i, label in enumerate(labels)}
    if rows == batch_size:
        return dict.fromkeys(labels, output)
    raise ValueError(
        f"An output of {rows} rows is neither the batch ({batch_size}) nor {n} tasks x {batch_size}; pass the "
        "batch size of the input."
    )


def branch_points(model: nn.Module, block: Parallel) -> dict[str, tuple[int, str]]:
    """Per tower, the (layer, site kind) of the lowest site where the tasks' plans differ (dropped sites agree)."""
    points: dict[str, tuple[int, str]] = {}
    for site in iter_sites(model):
        if site.dropped:
            continue
        plans = [child_plan(child, site) for child in block.children]
        if all(plan == plans[0] for plan in plans):
            continue
        key = (site.layer_index, site.site)
        best = points.get(site.tower)
        if best is None or (key[0], site_order(key[1])) < (best[0], site_order(best[1])):
            points[site.tower] = key
    return points


class ParallelMethod(CompositionMethod):
    follows_drop = True

    def activate(self, model: nn.Module, block: Parallel) -> None:
        state = get_state(model)
        block = self.resolve(state, block)
        points = branch_points(model, block)
        for tower in points:
            if not state.spec.towers[tower].parallel_branch:
                raise ValueError(
                    f"Parallel cannot branch the {tower!r} tower of {state.spec.family!r}: the model reads that tower's "
                    f"output with the input batch (e.g. end-of-text pooling). Give {list(block.labels)} the same "
                    f"adapters there (or none: add_adapter(..., config=AdapterConfig(towers=(...))))."
                )
        plans = {id(site): _site_plan(block, site, points.get(site.tower)) for site in iter_sites(model)}
        activate_block(model, block, lambda _block, site: plans[id(site)])
        for tower, (layer, kind) in points.items():
            layers = tower_blocks(model, state.spec.towers[tower])
            branch = TowerBranch(tower, state.spec.towers[tower], layers, layer, kind, len(block.children))
            state.hooks.extend(branch.install())

    def resolve(self, state: AdapterState, block: Parallel) -> Parallel:
        return Parallel(*(resolve_child(state, child) for child in block.children))

    def trained(self, block: Parallel) -> tuple[set[str], set[str]]:
        return union_trained(block.children)

    def site_plan(self, block: Parallel, site: AdapterSite) -> Any:
        raise TypeError("Parallel cannot be nested inside another composition block; activate it on its own.")


def _site_plan(block: Parallel, site: AdapterSite, point: tuple[int, str] | None) -> Any:
    plans = tuple(child_plan(child, site) for child in block.children)
    before = point is None or (site.layer_index, site_order(site.site)) < (point[0], site_order(point[1]))
    if before:  # below the branch the tasks agree (or the site is dropped and runs plain anyway)
        return plans[0] if all(p == plans[0] for p in plans) else None
    return ParallelPlan(plans) if any(p is not None for p in plans) else None


def _label(child: Any) -> str:
    if isinstance(child, str):
        return child
    if isinstance(child, Stack):
        return child.adapters[-1]
    return child.name if child.name is not None else "-".join(child.adapters)


register_composition(Parallel, ParallelMethod())
