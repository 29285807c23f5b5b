"""Many tasks' adapters at one site as stacked tensors: the layout per-row routing gathers from (Punica's SGMV
layout, for bottleneck adapters).

A :class:`StackedGroup` holds the adapters of a site that can share one batched matmul (same ``reads``, widths,
activation, dtype and device). Packing copies their weights once into ``[T, r, d]`` / ``[T, d, r]`` (+ biases)
tensors and points each adapter's parameters at its slice (``param.data = stack[i]``), so the weights exist once:
loading 1,000 tasks costs their size and nothing else, and training or ``load_adapter`` (both write in place) keep
the stack current. Only a parameter moved or replaced (``model.to(...)``, assigning a new ``nn.Parameter``) makes
a group stale: each batch checks the first and last task of every group (``model.to`` moves them all), activating
the ``Route`` again checks every parameter; a stale group is packed again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..layers import BottleneckAdapter
from ..placements import adapter_input
from ..site import AdapterSite


def pack(params: Sequence[nn.Parameter]) -> torch.Tensor:
    """One ``[T, ...]`` tensor holding ``params``; each parameter becomes a view of its slice (same object, so
    optimizers and references keep working). The old storage is freed once nothing else holds it."""
    stack = torch.stack([p.detach() for p in params])
    for index, param in enumerate(params):
        param.data = stack[index]
    return stack


def unpack(params: Sequence[nn.Parameter]) -> None:
    """Give ``params`` storage of their own again (their stack is being dropped)."""
    for param in params:
        param.data = param.data.clone()


def stackable(adapter: nn.Module) -> bool:
    """Plain bottleneck adapters gather; others (cross-modal ones with a shared middle projection) do not."""
    return type(adapter) is BottleneckAdapter


def group_key(adapter: BottleneckAdapter) -> tuple:
    weight = adapter.down.weight
    has_dropout = isinstance(adapter.dropout, nn.Dropout)
    return (adapter.reads, type(adapter.act), tuple(weight.shape), weight.dtype, weight.device, has_dropout)


@dataclass
class StackedGroup:
    """Adapters of ``tasks`` (indices into the route's tasks, in slot order) at one site, stacked."""

    reads: str
    act: nn.Module
    tasks: tuple[int, ...]
    params: tuple[nn.Parameter, ...]
    """down.weight, down.bias, up.weight, up.bias of each task in slot order (4 per task)."""
    addresses: tuple[int, ...]
    """Where each of ``params`` points once packed (its slice of a stack)."""
    down_weight: torch.Tensor
    down_bias: torch.Tensor
    up_weight: torch.Tensor
    up_bias: torch.Tensor
    slot_of_task: torch.Tensor
    """Route task index -> slot here (0 for tasks outside the group, which ``row_scale`` zeroes)."""
    row_scale: torch.Tensor | None
    """Route task index -> the task's scaling (0 outside the group); None when every task is here with scaling 1."""
    has_dropout: bool
    requires_grad: bool

    @classmethod
    def build(
        cls, tasks: Sequence[int], adapters: Sequence[BottleneckAdapter], num_tasks: int
    ) -> StackedGroup:
        params = tuple(p for a in adapters for p in (a.down.weight, a.down.bias, a.up.weight, a.up.bias))
        device = params[0].device
        slot_of_task = torch.zeros(num_tasks, dtype=torch.long)
        scale = torch.zeros(num_tasks, dtype=params[0].dtype)
        for slot, (task, adapter) in enumerate(zip(tasks, adapters, strict=True)):
            slot_of_task[task] = slot
            scale[task] = adapter.scaling
        everyone_plain = len(tasks) == num_tasks and bool((scale == 1).all())
        stacks = [pack(params[kind::4]) for kind in range(4)]
        return cls(
            reads=adapters[0].reads,
            act=adapters[0].act,
            tasks=tuple(tasks),
            params=params,
            addresses=tuple(p.data_ptr() for p in params),
            down_weight=stacks[0],
            down_bias=stacks[1],
            up_weight=stacks[2],
            up_bias=stacks[3],
            slot_of_task=slot_of_task.to(device),
            row_scale=None if everyone_plain else scale.to(device),
            has_dropout=isinstance(adapters[0].dropout, nn.Dropout),
            requires_grad=any(p.requires_grad for p in params),
        )

    def stacks(self) -> tuple[torch.Tensor, ...]:
        return (self.down_weight, self.down_bias, self.up_weight, self.up_bias)

    def is_current(self, adapter_at: Callable[[int], nn.Module], full: bool = False) -> bool:
        """Whether the adapters' parameters (``adapter_at(slot)``) are still the slices of the stacks: all of them
        with ``full``, else the first and last slot's (cheap enough per batch; ``model.to(...)`` moves every one)."""
        last = len(self.tasks) - 1
        for slot in range(len(self.tasks)) if full else sorted({0, last}):
            adapter = adapter_at(slot)
            own = (adapter.down.weight, adapter.down.bias, adapter.up.weight, adapter.up.bias)
            first = 4 * slot
            for param, expected, address in zip(
                own, self.params[first : first + 4], self.addresses[first : first + 4], strict=True
            ):
                if param is not expected or param.data_ptr() != address:
                    return False
        return True

    def gathers(self, training: bool) -> bool:
        """Whether :meth:`delta` may run: it reads the stacks, which autograd and dropout do not see."""
        return not (torch.is_grad_enabled() and self.requires_grad) and not (training and self.has_dropout)

    def delta(self, site: AdapterSite, hidden: torch.Tensor, stream: torch.Tensor | None, ids: torch.Tensor):
        """Every row's own adapter output (zero for rows whose task is not in the group): gather each row's weights
        and run two batched matmuls."""
        rows, width = hidden.shape[0], hidden.shape[-1]
        x = adapter_input(site.placement, self.reads, hidden, stream)
        x = x.reshape(rows, -1, width).to(self.down_weight.dtype)
        slots = self.slot_of_task.index_select(0, ids)
        inner = torch.baddbmm(
            self.down_bias.index_select(0, slots).unsqueeze(1),
            x,
            self.down_weight.index_select(0, slots).transpose(1, 2),
        )
        inner = self.act(inner)
        delta = torch.baddbmm(
            self.up_bias.index_select(0, slots).unsqueeze(1),
            inner,
            self.up_weight.index_select(0, slots).transpose(1, 2),
        )
        if self.row_scale is not None:
            delta = delta * self.row_scale.index_select(0, ids).view(rows, 1, 1)
        return delta.to(hidden.dtype).view(hidden.shape)


def build_groups(site: AdapterSite, names: Sequence[str]) -> list[StackedGroup] | None:
    """The route tasks' adapters at ``site`` stacked, one group per shape; None when an adapter here cannot be
    stacked (the route loops over tasks at this site instead)."""
    by_key: dict[tuple, list[int]] = {}
    for task, name in enumerate(names):
        adapter = site.adapters[name] if name in site.adapters else None
        if adapter is None:
            continue
        if not stackable(adapter):
            return None
        by_key.setdefault(group_key(adapter), []).append(task)
    return [
        StackedGroup.build(tasks, [site.adapters[names[t]] for t in tasks], len(names))
        for tasks in by_key.values()
    ]
