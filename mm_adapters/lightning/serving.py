"""Serving many tasks from one frozen backbone: every task's predictions for a batch from one forward pass.

Each exported task folder (``export_adapter``) adds its adapter and head to the backbone; the adapters then run
as one :class:`mm_adapters.Parallel` setup, so the layers below the lowest adapter (all the layers AdapterDrop
drops) run once for all tasks::

    from mm_adapters.backbones import load_backbone
    from mm_adapters.lightning import load_for_inference

    backbone = load_backbone("bert-base-uncased")
    predict = load_for_inference(backbone, ["adapters/sst2", "adapters/agnews"])
    results = predict({"input_ids": ids, "attention_mask": mask})
    results["sst2"].labels          # class names per sample when the export names its classes, else ids
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..backbones import Backbone
from ..composition import Parallel, set_adapter_drop
from ..composition.parallel import split_rows
from ..injection import set_active_adapters
from ..io import detect_format, resolve_folder
from ..serialization import CONFIG_FILE, load_adapter, read_adapter_config
from ..state import get_state
from .heads import build_head
from .task_folder import load_task_folder

PathLike = str | os.PathLike


@dataclass
class TaskPrediction:
    """One task's result for a batch: pooled ``features`` (B x D) and, for a task with a head, ``logits``."""

    features: torch.Tensor
    logits: torch.Tensor | None = None
    class_names: list[str] | None = None

    @property
    def predicted(self) -> torch.Tensor | None:
        """The most likely class id per sample (None for a task without a head)."""
        return None if self.logits is None else self.logits.argmax(dim=-1)

    @property
    def labels(self) -> list[str] | list[int] | None:
        """The predicted class per sample: its name when the task names its classes, else its id."""
        predicted = self.predicted
        if predicted is None:
            return None
        ids = predicted.tolist()
        return [self.class_names[i] for i in ids] if self.class_names else ids


class MultiTaskPredictor:
    """``predictor(batch) -> {task: TaskPrediction}``: every task of ``heads`` on ``batch``, in one backbone pass."""

    def __init__(
        self,
        backbone: Backbone,
        heads: Mapping[str, nn.Module | None],
        class_names: Mapping[str, Sequence[str] | None] | None = None,
        drop_layers: int = 0,
    ) -> None:
        self.backbone = backbone
        self.heads = dict(heads)
        self.class_names = {
            name: list(names) if names else None for name, names in (class_names or {}).items()
        }
        self.setup = Parallel(*self.heads)
        self.drop_layers = drop_layers

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.heads)

    def __call__(self, batch: dict) -> dict[str, TaskPrediction]:
        model = self.backbone.model
        if get_state(model).composition != self.setup:
            set_active_adapters(model, self.setup)
            if self.drop_layers:
                set_adapter_drop(model, self.drop_layers)
        with torch.no_grad():
            features = self.backbone(batch)
            per_task = split_rows(features, self.setup.labels, _batch_size(batch))
            return {
                name: TaskPrediction(
                    per_task[name],
                    None if head is None else head(per_task[name].to(_dtype(head, per_task[name]))),
                    self.class_names.get(name),
                )
                for name, head in self.heads.items()
            }


def load_for_inference(
    backbone: Backbone,
    directory: PathLike | Sequence[PathLike],
    *,
    names: Sequence[str] | None = None,
    class_names: Mapping[str, Sequence[str]] | None = None,
    drop_layers: int = 0,
    adapters: Sequence[PathLike] = (),
):
    """Load exported task folders onto ``backbone`` for inference.

    One folder: adds its adapter (active, eval mode) and returns its head (an ``nn.Linear``, or the ``ModuleDict`` of
    feature adapters), or None for an export without one; the folder's format comes from the registry
    (:mod:`mm_adapters.lightning.task_folder`). Several folders: returns a
    :class:`MultiTaskPredictor` that gives every task's predictions for one batch in one backbone pass. Tasks are
    named after their adapters (``names`` overrides); class names come from ``class_names``, else from the export
    when it carries them. ``drop_layers`` runs the lowest layers without adapters (AdapterDrop), sharing them
    across tasks. A fusion folder (one, from ``save_fusion``) loads after the ``adapters`` folders it fuses. Every
    folder may be a hub id (``"org/name@revision"``).
    """
    if isinstance(directory, (str, os.PathLike)):
        folder = resolve_folder(directory, "task")
        return detect_format(folder, "task").load(backbone, folder, adapters=adapters)
    folders = [resolve_folder(d, "task") for d in directory]
    if not folders:
        raise ValueError("load_for_inference needs at least one exported task folder.")
    task_names = list(names) if names is not None else [_adapter_name(folder) for folder in folders]
    if len(task_names) != len(folders):
        raise ValueError(f"names has {len(task_names)} entries for {len(folders)} folders.")
    if len(set(task_names)) != len(task_names):
        raise ValueError(
            f"The exports name their adapters {task_names}; pass names=[...] to tell the tasks apart."
        )
    heads: dict[str, nn.Module | None] = {}
    found_names: dict[str, Sequence[str] | None] = {}
    for folder, name in zip(folders, task_names, strict=True):
        head = _load_task(backbone, folder, name)
        heads[name] = head
        found_names[name] = _class_names(folder, head)
    found_names.update(class_names or {})
    backbone.eval()
    return MultiTaskPredictor(backbone, heads, found_names, drop_layers)


def _load_task(backbone: Backbone, folder: Path, name: str) -> nn.Module | None:
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(
            f"{folder} has no {CONFIG_FILE}: serving several tasks needs an adapter per task (export_adapter writes one)."
        )
    document = read_adapter_config(folder)
    if document["name"] == name:
        return load_task_folder(backbone, folder)
    # the export's adapter name is taken by another task: load it under ``name``
    head = build_head(folder)
    load_adapter(backbone.model, folder, name, head=head)
    return head.eval() if head is not None else None


def _adapter_name(folder: Path) -> str:
    if not (folder / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}; pass folders that export_adapter wrote.")
    return read_adapter_config(folder)["name"]


def _class_names(folder: Path, head: nn.Module | None) -> Sequence[str] | None:
    """Class names the export carries: on the loaded head, or in ``adapter_config.json``."""
    names = getattr(head, "class_names", None)
    if names:
        return list(names)
    document = read_adapter_config(folder)
    names = document.get("class_names")
    return list(names) if isinstance(names, list) else None


def _batch_size(batch: dict) -> int:
    for key in ("pixel_values", "input_ids", "input_values"):
        if key in batch:
            return int(batch[key].shape[0])
    for value in batch.values():
        if torch.is_tensor(value):
            return int(value.shape[0])
    raise ValueError("The batch holds no tensor; pass the inputs the backbone takes (e.g. pixel_values).")


def _dtype(head: nn.Module, features: torch.Tensor) -> torch.dtype:
    for parameter in head.parameters():
        return parameter.dtype
    return features.dtype
