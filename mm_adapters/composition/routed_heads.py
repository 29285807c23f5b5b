"""Per-row task heads for mixed-task batches: row ``i`` goes through the head of its task ``task_ids[i]``.

Linear heads of the same shape are stacked (their parameters become views of the stacks, as the adapters' do under
a :class:`~mm_adapters.composition.route.Route`) and applied with one gathered batched matmul; other heads (an MLP,
heads of other widths) run once per group of rows::

    heads = RoutedHeads({"sst2": sst2_head, "agnews": agnews_head})   # same task order as the Route
    logits = heads(pooled, task_ids)     # a list: row i's logits over its own task's classes
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .route import task_indices
from .route_stacks import pack


class RoutedHeads(nn.Module):
    """Task heads by task name, applied per row; ``tasks`` fixes the order task indices refer to."""

    def __init__(self, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not isinstance(heads, Mapping) or not heads:
            raise ValueError("RoutedHeads takes a non-empty mapping {task name: head module}.")
        self.heads = nn.ModuleDict(dict(heads))
        self.tasks: tuple[str, ...] = tuple(heads)
        self._groups: (
            list[tuple[tuple[int, ...], tuple[nn.Parameter, ...], torch.Tensor, torch.Tensor]] | None
        ) = None

    def forward(self, features: torch.Tensor, task_ids: Any) -> list[torch.Tensor]:
        """Row ``i``'s head output for ``features[i]`` (``[B, d]``, or ``[B, ..., d]`` for token-level heads)."""
        ids = task_indices(self.tasks, task_ids)
        if len(ids) != features.shape[0]:
            raise ValueError(
                f"{len(ids)} task ids for a batch of {features.shape[0]} feature rows; pass one per row."
            )
        out: list[torch.Tensor | None] = [None] * len(ids)
        done = torch.zeros(len(self.tasks), dtype=torch.bool)
        if not (torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())):
            for tasks, _params, weight, bias in self._stacked():
                self._gathered(features, ids, tasks, weight, bias, out)
                done[list(tasks)] = True
        for task in torch.unique(ids).tolist():
            if not done[task]:
                rows = torch.nonzero(ids == task).flatten()
                result = self.heads[self.tasks[task]](features.index_select(0, rows.to(features.device)))
                for row, value in zip(rows.tolist(), result, strict=True):
                    out[row] = value
        return out

    @staticmethod
    def _gathered(features, ids, tasks, weight, bias, out) -> None:
        slot_of = {task: slot for slot, task in enumerate(tasks)}
        rows = [i for i, task in enumerate(ids.tolist()) if task in slot_of]
        if not rows:
            return
        slots = torch.tensor([slot_of[int(ids[i])] for i in rows], device=weight.device)
        picked = features.index_select(0, torch.tensor(rows, device=features.device))
        x = picked.reshape(len(rows), -1, picked.shape[-1]).to(weight.dtype)
        logits = torch.baddbmm(
            bias.index_select(0, slots).unsqueeze(1), x, weight.index_select(0, slots).transpose(1, 2)
        )
        logits = logits.view(*picked.shape[:-1], weight.shape[1]).to(features.dtype)
        for row, value in zip(rows, logits, strict=True):
            out[row] = value

    def _stacked(self):
        """Linear heads with bias grouped by shape, dtype and device, stacked (again when a parameter moved)."""
        if self._groups is not None and all(_current(params, w, b) for _t, params, w, b in self._groups):
            return self._groups
        by_key: dict[tuple, list[int]] = {}
        for task, name in enumerate(self.tasks):
            head = self.heads[name]
            if type(head) is nn.Linear and head.bias is not None:
                key = (tuple(head.weight.shape), head.weight.dtype, head.weight.device)
                by_key.setdefault(key, []).append(task)
        groups = []
        for tasks in by_key.values():
            heads = [self.heads[self.tasks[t]] for t in tasks]
            params = tuple(p for h in heads for p in (h.weight, h.bias))
            groups.append((tuple(tasks), params, pack(params[0::2]), pack(params[1::2])))
        self._groups = groups
        return groups


def _current(params: tuple[nn.Parameter, ...], weight: torch.Tensor, bias: torch.Tensor) -> bool:
    return all(
        p.data_ptr() == stack[i].data_ptr()
        for i in range(len(params) // 2)
        for p, stack in zip(params[2 * i : 2 * i + 2], (weight, bias), strict=True)
    )
