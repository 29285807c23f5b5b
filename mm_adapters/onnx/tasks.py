"""Loading export folders onto a backbone for ONNX export: each becomes an :class:`ExportedTask`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..backbones import Backbone
from ..composition.fusion_io import CONFIG_FILE as FUSION_CONFIG_FILE
from ..injection import active_adapters, list_adapters
from ..lightning import load_for_inference
from ..lightning.export import LABELS_FILE
from ..serialization import CONFIG_FILE
from ..state import get_state
from .graphs import CLASSIFICATION, CTC, RETRIEVAL, TASKS
from .preprocessing import read_task_json
from .tracing import OnnxExportError


@dataclass
class ExportedTask:
    """One export folder loaded onto the backbone."""

    name: str
    kind: str
    head: nn.Module | None
    setup: Any
    """What ``set_active_adapters`` activates for this task (an adapter name, a Fuse/Stack block, or None)."""
    adapter_names: tuple[str, ...]
    labels: dict[str, Any] | None
    description: dict[str, Any] | None
    """The folder's ``task.json``, if any."""
    folder: Path


def load_tasks(
    backbone: Backbone, folders: Sequence[Path], adapters: Sequence[Path] = ()
) -> list[ExportedTask]:
    """Load each export folder (a fusion folder after the ``adapters`` it fuses) onto ``backbone``."""
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(
                f"Export folder {folder} does not exist; pass folders export_adapter wrote."
            )
    tasks = []
    for folder in folders:
        before = set(list_adapters(backbone.model))
        head = load_for_inference(backbone, folder, adapters=adapters if _is_fusion(folder) else ())
        model = backbone.model
        setup = get_state(model).setup if list_adapters(model) else None
        names = tuple(sorted(set(list_adapters(model)) - before)) or tuple(active_adapters(model))
        description = read_task_json(folder)
        labels = _read_labels(folder)
        task = ExportedTask(_task_name(folder), _kind(folder, head, description, labels), head, setup, names,
                            labels, description, folder)  # fmt: skip
        if any(t.name == task.name for t in tasks):
            raise ValueError(f"Two exports are both named {task.name!r}; export them separately.")
        tasks.append(task)
    return tasks


def _is_fusion(folder: Path) -> bool:
    return (folder / FUSION_CONFIG_FILE).is_file()


def _task_name(folder: Path) -> str:
    for file in (CONFIG_FILE, FUSION_CONFIG_FILE):
        path = folder / file
        if path.is_file():
            name = json.loads(path.read_text(encoding="utf-8")).get("name")
            if isinstance(name, str) and name:
                return name
    return folder.name


def _read_labels(folder: Path) -> dict[str, Any] | None:
    path = folder / LABELS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _kind(folder: Path, head, description, labels) -> str:
    kind = (description or {}).get("task") or (labels or {}).get("task")
    if kind is None:
        kind = RETRIEVAL if head is None or isinstance(head, nn.ModuleDict) else CLASSIFICATION
    if kind not in TASKS:
        raise OnnxExportError(
            f"{folder} holds a {kind!r} task; ONNX export covers {', '.join(TASKS)} (a seq2seq task needs the "
            "autoregressive decoder, which this export does not write)."
        )
    if kind in (CLASSIFICATION, CTC) and not isinstance(head, nn.Linear):
        raise OnnxExportError(f"{folder} is a {kind} task without a linear head; export_adapter writes one.")
    return kind
