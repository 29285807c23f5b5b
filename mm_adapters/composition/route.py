"""Mixed-task batches in one forward pass: every row of the batch meets only its own task's adapters.

``BatchSplit`` generalised to arbitrary per-row tasks (rows in any order, any counts, tasks absent from a batch)::

    set_active_adapters(model, Route("sst2", "agnews", "mnli"))   # once: the tasks a row may ask for
    set_row_tasks(model, torch.tensor([2, 0, 0, 1, 2]))           # per batch, before its forward pass
    hidden = model(**batch).last_hidden_state                     # row i as if task ids[i] ran alone

Two kernels, the same outputs (``Route(..., kernel=...)``):

- ``"gather"`` (default): at each site the tasks' adapters are stacked into ``[T, r, d]`` / ``[T, d, r]`` tensors
  (:mod:`mm_adapters.composition.route_stacks`, no copy kept: the adapters' parameters become views of the stacks);
  each row gathers its task's weights and two batched matmuls (``torch.baddbmm``) apply them, as Punica's SGMV does
  for LoRA. The cost does not grow with the number of tasks in the batch.
- ``"loop"``: rows sorted by task once per batch; at each site a Python loop runs each present task's adapter module
  on its slice of rows. Used anyway where autograd or dropout needs the modules (training) and at sites holding
  adapters that cannot be stacked (cross-modal ones with a shared middle projection).

``benchmarks/serving.py`` measures both (``--setups routed-gather routed-loop``). Per-row task heads:
:mod:`.routed_heads`. The row tasks are state on the model, set outside ``forward``: one batch at a time per model
(as a server's batching loop runs it).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn

from ..plugins import CompositionMethod, register_composition
from ..site import AdapterSite
from ..state import AdapterState, get_state, iter_sites
from .activation import activate_block
from .blocks import CompositionBlock
from .route_stacks import StackedGroup, build_groups, unpack

KERNELS = ("gather", "loop")
_ROUTER_ATTR = "_mm_adapters_router"


@dataclass(frozen=True, init=False)
class Route(CompositionBlock):
    """Per-row tasks: task ``i`` is adapter ``tasks[i]``; :func:`set_row_tasks` says which task each row is."""

    tasks: tuple[str, ...]
    kernel: str = "gather"

    def __init__(self, *tasks: str, kernel: str = "gather") -> None:
        if len(tasks) == 1 and isinstance(tasks[0], (list, tuple)):
            tasks = tuple(tasks[0])  # Route(["a", "b"]) as well
        if not tasks or not all(isinstance(t, str) for t in tasks):
            raise ValueError(f"Route takes adapter names, one per task, e.g. Route('a', 'b'); got {tasks!r}.")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"A task is listed twice in Route{tasks!r}.")
        if kernel not in KERNELS:
            raise ValueError(f"Route kernel must be one of {KERNELS}, got {kernel!r}.")
        object.__setattr__(self, "tasks", tuple(tasks))
        object.__setattr__(self, "kernel", kernel)

    def adapter_names(self) -> tuple[str, ...]:
        return self.tasks


@dataclass(frozen=True)
class RowRouting:
    """One batch's rows by task, worked out once in :func:`set_row_tasks` for every site to use."""

    ids: torch.Tensor
    order: torch.Tensor | None
    """Rows sorted by task (stable); None when they already are."""
    inverse: torch.Tensor | None
    segments: tuple[tuple[int, int, int], ...]
    """(task, first sorted row, row count) of each task present."""

    @classmethod
    def of(cls, ids: torch.Tensor, device: torch.device) -> RowRouting:
        """Plain Python on the (short) list of ids: faster per batch than a chain of small tensor ops."""
        values = ids.tolist()
        order = sorted(range(len(values)), key=values.__getitem__)  # stable
        segments, start = [], 0
        for task, rows in itertools.groupby(order, key=values.__getitem__):
            count = sum(1 for _ in rows)
            segments.append((task, start, count))
            start += count
        ids = ids.to(device)
        if order == list(range(len(values))):
            return cls(ids, None, None, tuple(segments))
        inverse = [0] * len(order)
        for position, row in enumerate(order):
            inverse[row] = position
        to_tensor = partial(torch.tensor, dtype=torch.long, device=device)
        return cls(ids, to_tensor(order), to_tensor(inverse), tuple(segments))


@dataclass
class SiteRoute:
    """What one site keeps for the route: its stacked groups (None: loop here) and the tasks it holds."""

    tasks: tuple[str, ...]
    kernel: str
    groups: list[StackedGroup] | None
    present: frozenset[int]


@dataclass
class Router:
    """The active route of one model: its tasks, kernel, per-site stacks and the current batch's rows."""

    block: Route
    sites: dict[AdapterSite, SiteRoute] = field(default_factory=dict)
    rows: dict[str | None, RowRouting] = field(default_factory=dict)
    """Per tower (None: every tower) the current batch's rows."""
    routed: list[AdapterSite] = field(default_factory=list)
    """The sites running the route (set on activation)."""
    towers: frozenset[str] = frozenset()
    device: torch.device = torch.device("cpu")

    def routing(self, site: AdapterSite, batch: int) -> RowRouting:
        rows = self.rows.get(site.tower) or self.rows.get(None)
        if rows is None:
            missing = f" for the {site.tower!r} tower" if self.rows else ""
            raise RuntimeError(
                f"A Route is active but no row tasks are set{missing}; call mm_adapters.set_row_tasks(model, "
                "task_ids) before the forward pass."
            )
        if len(rows.ids) != batch:
            raise ValueError(
                f"set_row_tasks gave {len(rows.ids)} task ids, but the {site.tower!r} tower's batch has {batch} rows "
                "here; pass one task id per row (a dict {tower: ids} for towers with different batch sizes)."
            )
        return rows

    def apply(self, site: AdapterSite, hidden: torch.Tensor, stream: torch.Tensor | None) -> torch.Tensor:
        rows = self.routing(site, hidden.shape[0])
        entry = self.sites.get(site)
        if entry is None:
            raise RuntimeError("This site was not prepared for the Route; call set_row_tasks again.")
        groups = entry.groups
        # a batch of one task takes the loop: one segment, no gather, the plain adapter's own (fused) path
        gather = self.block.kernel == "gather" and groups and len(rows.segments) > 1
        if gather and all(g.gathers(site.training) for g in groups):
            ids = rows.ids if rows.ids.device == hidden.device else rows.ids.to(hidden.device)
            out = hidden
            for group in groups:
                out = out + group.delta(site, hidden, stream, ids)
            return out
        return self.loop(site, entry, rows, hidden, stream)

    def loop(self, site, entry: SiteRoute, rows: RowRouting, hidden, stream) -> torch.Tensor:
        """Each present task's adapter module on its own rows (sorted by task once per batch)."""
        if rows.order is not None:
            hidden = hidden.index_select(0, rows.order.to(hidden.device))
            stream = None if stream is None else stream.index_select(0, rows.order.to(stream.device))
        parts = []
        for task, start, count in rows.segments:
            part = hidden.narrow(0, start, count)
            if task in entry.present:
                name = self.block.tasks[task]
                part_stream = None if stream is None else stream.narrow(0, start, count)
                part = site.adapters[name](site.adapter_input(name, part, part_stream), part)
            parts.append(part)
        if not parts:  # an empty batch
            return hidden
        out = torch.cat(parts) if len(parts) > 1 else parts[0]
        return out if rows.inverse is None else out.index_select(0, rows.inverse.to(out.device))

    def prepare(self, full_check: bool = False) -> None:
        """Stack (again) every routed site whose stacks are missing or stale; a cheap check per site otherwise."""
        sites = {}
        for site in self.routed:
            entry = self.sites.get(site)
            sites[site] = (
                entry if entry is not None and self._current(site, entry, full_check) else self._build(site)
            )
            if entry is not None and entry.groups and sites[site] is not entry:
                _release(entry, sites[site])
        self.sites = sites

    def _current(self, site: AdapterSite, entry: SiteRoute, full: bool) -> bool:
        """Whether ``entry`` still fits ``site``: per batch a constant-time check, on activation every adapter."""
        names = self.block.tasks
        if entry.kernel != self.block.kernel or (entry.tasks is not names and entry.tasks != names):
            return False
        adapters = site._modules["adapters"]  # forward-path speed: no Module.__getattr__
        if full and entry.present != frozenset(t for t, n in enumerate(names) if n in adapters):
            return False  # tasks join a site only through add_adapter, which activates the Route again
        if entry.groups is None:
            return True
        return all(g.is_current(lambda slot, g=g: adapters[names[g.tasks[slot]]], full) for g in entry.groups)

    def _build(self, site: AdapterSite) -> SiteRoute:
        names = self.block.tasks
        present = frozenset(t for t, n in enumerate(names) if n in site.adapters)
        groups = build_groups(site, names) if self.block.kernel == "gather" else None
        return SiteRoute(names, self.block.kernel, groups, present)


def _release(old: SiteRoute, new: SiteRoute) -> None:
    """Give parameters that no new stack holds their own storage back, so the old stacks can be freed."""
    kept = {id(p) for group in new.groups or () for p in group.params}
    for group in old.groups:
        storages = {stack.untyped_storage().data_ptr() for stack in group.stacks()}
        unpack([p for p in group.params if id(p) not in kept and p.untyped_storage().data_ptr() in storages])


@dataclass(frozen=True, eq=False)
class RoutePlan:
    """A site's plan under a Route: the router applies each row's own adapter."""

    router: Router

    def apply(
        self, site: AdapterSite, hidden: torch.Tensor, sublayer_input: torch.Tensor | None
    ) -> torch.Tensor:
        return self.router.apply(site, hidden, sublayer_input)


def set_row_tasks(model: nn.Module, task_ids: torch.Tensor | Sequence[int | str] | Mapping[str, Any]) -> None:
    """Say which task each row of the next batch is: task indices into the active :class:`Route`'s tasks (or
    their names), one per row; a mapping ``{tower: ids}`` for two-tower models fed batches of different sizes.

    Checks the ids, sorts the rows by task once for the whole model and (re)stacks the adapters of any site whose
    stacks are missing or stale. State set here, outside ``forward``; it holds until the next call."""
    router = active_router(model)
    per_tower = dict(task_ids) if isinstance(task_ids, Mapping) else {None: task_ids}
    unknown = [t for t in per_tower if t is not None and t not in router.towers]
    if unknown:
        raise ValueError(
            f"set_row_tasks got ids for unknown towers {unknown}; this model has {sorted(router.towers)}."
        )
    rows = {
        tower: RowRouting.of(task_indices(router.block.tasks, ids), router.device)
        for tower, ids in per_tower.items()
    }
    router.prepare()
    router.rows = rows


def task_indices(tasks: Sequence[str], task_ids: Any) -> torch.Tensor:
    """``task_ids`` (a 1-D integer tensor, or a list of indices or task names) as a CPU LongTensor, checked."""
    if isinstance(task_ids, torch.Tensor):
        if (
            task_ids.dim() != 1
            or task_ids.is_floating_point()
            or task_ids.is_complex()
            or task_ids.dtype == torch.bool
        ):
            raise ValueError(
                f"task_ids must be a 1-D integer tensor (one task index per row), got {task_ids.dtype} of shape "
                f"{tuple(task_ids.shape)}."
            )
        ids = task_ids.detach().to("cpu", torch.long)
    else:
        index = {name: i for i, name in enumerate(tasks)}
        values = list(task_ids)
        unknown = [v for v in values if isinstance(v, str) and v not in index]
        if unknown:
            raise ValueError(
                f"Unknown tasks {sorted(set(unknown))[:5]} in task_ids; the tasks are {list(tasks)[:10]}."
            )
        if not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"task_ids must hold task indices or task names, got {values[:5]!r}.")
        ids = torch.tensor([index[v] if isinstance(v, str) else v for v in values], dtype=torch.long)
    bad = ids[(ids < 0) | (ids >= len(tasks))]
    if len(bad):
        raise ValueError(
            f"Unknown task ids {sorted(set(bad.tolist()))[:5]}: there are {len(tasks)} tasks "
            f"(ids 0..{len(tasks) - 1}: {list(tasks)[:5]}{'...' if len(tasks) > 5 else ''})."
        )
    return ids


def active_router(model: nn.Module) -> Router:
    """The router of ``model``'s active :class:`Route` (a clear error when another setup is active)."""
    state = get_state(model)
    router = model.__dict__.get(_ROUTER_ATTR)
    if not isinstance(state.composition, Route) or router is None:
        raise ValueError(
            f"set_row_tasks needs an active Route; this model runs {state.setup!r}. Activate one first: "
            "set_active_adapters(model, Route('task_a', 'task_b', ...))."
        )
    return router


class _RouterRelease:
    """A hook handle (``AdapterState.hooks``): activating another setup removes the router from the model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = weakref.ref(model)

    def remove(self) -> None:
        model = self.model()
        if model is not None:
            model.__dict__.pop(_ROUTER_ATTR, None)


class RouteMethod(CompositionMethod):
    follows_drop = False

    def activate(self, model: nn.Module, block: Route) -> None:
        old = model.__dict__.get(_ROUTER_ATTR)
        router = Router(block, dict(old.sites) if old is not None else {})  # stacks are reused while current
        plan = RoutePlan(router)
        tasks = set(block.tasks)

        def plan_for(_block: Route, site: AdapterSite) -> RoutePlan | None:
            if not tasks.intersection(site.adapters):
                return None
            router.routed.append(site)
            return plan

        activate_block(model, block, plan_for)
        router.towers = frozenset(site.tower for site in iter_sites(model))
        if router.routed:
            router.device = next(router.routed[0].adapters.parameters()).device
        model.__dict__[_ROUTER_ATTR] = router
        get_state(model).hooks.append(_RouterRelease(model))  # the next setup drops the router and its stacks
        # every parameter is checked when the tasks change; re-activating the same Route (add_adapter does, for
        # each adapter added) checks as cheaply as each batch does
        router.prepare(full_check=old is None or old.block != block)

    def resolve(self, state: AdapterState, block: Route) -> Route:
        return block

    def trained(self, block: Route) -> tuple[set[str], set[str]]:
        return set(block.tasks), set()

    def site_plan(self, block: Route, site: AdapterSite) -> Any:
        raise TypeError("Route cannot be nested inside another composition block; activate it on its own.")


register_composition(Route, RouteMethod())
