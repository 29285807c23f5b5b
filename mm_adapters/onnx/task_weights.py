"""Swappable task weights: a graph whose adapter, fusion and head tensors are graph inputs.

As Olive's ``ExtractAdapters`` does for LoRA, the task's tensors leave the graph: :class:`SwappableGraph` calls the
traced module with those parameters replaced by extra inputs (``torch.func.functional_call``), so the exporter
cannot fold them into the backbone's constants. Every task that shares the adapter layout then runs on the same
backbone file; a task is one small safetensors file of those inputs (``tasks/<name>.safetensors``), which a
device binds once per task switch (ONNX Runtime: ``OrtValue``s bound with ``IOBinding``).

The inputs are named after the parameters with the task's own adapter name replaced by ``task``
(``task:backbone.model.encoder.layer.0.output.dense.adapters.task.down.weight``), so every task maps to them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch import nn
from torch.func import functional_call

TASK_INPUT_PREFIX = "task:"
SLOT = "task"
_TASK_SCOPES = ("adapters", "fusions")


def is_task_parameter(name: str) -> bool:
    """Whether the graph parameter ``name`` belongs to a task (adapter, fusion or head), not the frozen backbone."""
    parts = name.split(".")
    return parts[0] in ("head", "heads") or any(scope in parts[:-1] for scope in _TASK_SCOPES)


def slot_names(module: nn.Module, adapter_names: tuple[str, ...]) -> dict[str, str]:
    """{parameter name in ``module``: graph input name} for the head and the adapters ``adapter_names`` (one
    task's; other tasks' adapters loaded on the same model are left out), the adapter names replaced."""
    pattern = re.compile(r"\.(adapters|fusions)\.(" + "|".join(map(re.escape, adapter_names)) + r")\.")
    names = {}
    for name, _ in module.named_parameters():
        if not is_task_parameter(name):
            continue
        if name.split(".")[0] not in ("head", "heads") and not pattern.search(name):
            continue  # another task's adapter
        names[name] = TASK_INPUT_PREFIX + pattern.sub(rf".\1.{SLOT}.", name)
    if len(set(names.values())) != len(names):
        raise ValueError(f"The adapters {list(adapter_names)} do not map to distinct graph inputs.")
    return names


def task_tensors(module: nn.Module, slots: Mapping[str, str]) -> dict[str, np.ndarray]:
    """The current values of the task parameters of ``module``, keyed by graph input name."""
    parameters = dict(module.named_parameters())
    missing = sorted(set(slots) - set(parameters))
    if missing:
        raise ValueError(f"The task has no parameters {missing[:4]}; it does not share the exported layout.")
    return {slots[name]: parameters[name].detach().cpu().float().contiguous().numpy() for name in slots}


class SwappableGraph(nn.Module):
    """``graph`` with its task parameters taken from trailing inputs (in ``slots`` order)."""

    def __init__(self, graph: nn.Module, slots: Mapping[str, str]) -> None:
        super().__init__()
        self.inner = graph  # not ``graph``: torch.fx's GraphModule has an attribute of that name
        self.parameter_names = list(slots)

    def forward(self, *inputs: torch.Tensor):
        count = len(inputs) - len(self.parameter_names)
        weights = dict(zip(self.parameter_names, inputs[count:], strict=True))
        return functional_call(self.inner, weights, inputs[:count])


def save_task_file(path: str | os.PathLike, tensors: Mapping[str, np.ndarray]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(tensors), str(path))
    return path


def load_task_file(path: str | os.PathLike, expected: Mapping[str, tuple]) -> dict[str, np.ndarray]:
    """A task file's tensors, checked against the graph's task inputs ``{name: shape}`` (None for a free axis)."""
    tensors = load_file(str(path))
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this graph: missing {missing[:4]}, unexpected {unexpected[:4]}."
        )
    for name, shape in expected.items():
        got = tensors[name].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got, strict=True)):
            raise ValueError(f"{path}: {name} has shape {got}, the graph takes {shape}.")
    return tensors
