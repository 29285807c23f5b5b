"""Exported tasks loaded onto one backbone, and what each kind answers for a batch.

Classification tasks with adapters run together as one :class:`~mm_adapters.lightning.MultiTaskPredictor` pass
(``Parallel``: the layers below the lowest adapter run once); a head-only export (a linear probe) reads the plain
backbone; CTC and seq2seq decode with their Lightning modules' own ``decode`` / ``transcribe``, so predictions
are those of the validation step.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Backbone
from ..composition import Route, RoutedHeads, set_row_tasks
from ..injection import delete_adapter, list_adapters, set_active_adapters
from ..io import load_head
from ..lightning import CTCModule, MultiTaskPredictor, SpeechSeq2SeqModule
from ..lightning.export import build_head
from ..serialization import load_adapter
from ..state import get_state
from .exports import TaskExport, UsageError

DEFAULT_MAX_NEW_TOKENS = 16
_ROUTED_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Per backbone: the task names and the RoutedHeads over them (its stacked head weights are kept between batches)."""


@dataclass
class LoadedTask:
    """An export loaded onto a backbone: its head and, for speech recognition, the module that decodes."""

    export: TaskExport
    head: nn.Module | None
    decoder: nn.Module | None = None

    @property
    def name(self) -> str:
        return self.export.name

    @property
    def kind(self) -> str:
        return self.export.kind


def load_task(backbone: Backbone, export: TaskExport, max_new_tokens: int | None = None) -> LoadedTask:
    """Add ``export``'s adapter (as ``export.name``) and head to ``backbone``. UsageError when it does not fit."""
    head = build_head(export.folder)
    try:
        if export.has_adapter:
            load_adapter(backbone.model, export.folder, export.name, head=head, set_active=False)
        elif head is not None:
            load_head(head, export.folder)
    except (ValueError, RuntimeError) as error:
        raise UsageError(
            f"{export.folder} does not fit backbone {backbone.name!r}: {error}", "export"
        ) from None
    device = _device(backbone)
    head = None if head is None else head.to(device).eval()
    task = LoadedTask(export, head)
    if export.kind == "ctc":
        task.decoder = CTCModule(backbone, tuple(export.vocabulary or ()) or ("a",)).eval()
        task.decoder.head = head
    elif export.kind == "seq2seq":
        tokens = max_new_tokens or export.generation.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS
        task.decoder = SpeechSeq2SeqModule(backbone, max_new_tokens=int(tokens), cache_encoder=False).eval()
    return task


def unload_task(backbone: Backbone, task: LoadedTask) -> None:
    """Take ``task``'s adapter off the backbone (nothing is active afterwards)."""
    set_active_adapters(backbone.model, None)
    if task.export.has_adapter and task.name in list_adapters(backbone.model):
        delete_adapter(backbone.model, task.name)


@torch.no_grad()
def classify(backbone: Backbone, tasks: Sequence[LoadedTask], batch: dict) -> dict[str, torch.Tensor]:
    """Class probabilities (B x classes) of every classification task in one pass for those with adapters, one
    more for the head-only ones."""
    probabilities: dict[str, torch.Tensor] = {}
    adapted = [task for task in tasks if task.export.has_adapter]
    if len(adapted) == 1:  # the training forward exactly: its adapter active, its head on the pooled features
        task = adapted[0]
        set_active_adapters(backbone.model, task.name)
        features = backbone(batch)
        probabilities[task.name] = task.head(features.to(_dtype(task.head))).float().softmax(dim=-1)
    elif adapted:
        predictor = MultiTaskPredictor(backbone, {task.name: task.head for task in adapted})
        for name, prediction in predictor(batch).items():
            probabilities[name] = prediction.logits.float().softmax(dim=-1)
    probes = [task for task in tasks if not task.export.has_adapter]
    if probes:
        set_active_adapters(backbone.model, None)
        features = backbone(batch)
        for task in probes:
            probabilities[task.name] = task.head(features.to(_dtype(task.head))).float().softmax(dim=-1)
    return probabilities


@torch.no_grad()
def classify_routed(
    backbone: Backbone, tasks: Sequence[LoadedTask], batch: dict, row_tasks: Sequence[str]
) -> list[torch.Tensor]:
    """Per row, the class probabilities of its own task (``row_tasks[i]``), from one forward pass in which each row
    meets only its task's adapters (:class:`~mm_adapters.Route`) and head (:class:`~mm_adapters.RoutedHeads`).

    ``tasks`` are classification tasks with adapters on ``backbone``; the Route spans all of them (rows may ask for
    any subset), so it is stacked once and kept while the set of tasks stays the same."""
    names = tuple(task.name for task in tasks)
    model = backbone.model
    route = Route(*names)
    if get_state(model).composition != route:
        set_active_adapters(model, route)
    set_row_tasks(model, list(row_tasks))
    features = backbone(batch)
    cached = _ROUTED_HEADS.get(backbone)
    if cached is None or cached[0] != names or any(cached[1].heads[t.name] is not t.head for t in tasks):
        cached = _ROUTED_HEADS[backbone] = (names, RoutedHeads({task.name: task.head for task in tasks}))
    return [logits.float().softmax(dim=-1) for logits in cached[1](features, list(row_tasks))]


@torch.no_grad()
def transcribe(backbone: Backbone, task: LoadedTask, batch: dict) -> list[str]:
    """Greedy transcripts, as the task's validation step decodes them."""
    set_active_adapters(backbone.model, task.name if task.export.has_adapter else None)
    if task.kind == "ctc":
        return task.decoder.decode(*task.decoder(batch))
    return task.decoder.transcribe(task.decoder.encode(batch))


@torch.no_grad()
def embed(backbone: Backbone, task: LoadedTask, batch: dict, modality: str) -> torch.Tensor:
    """L2-normalised embeddings of images or texts, through the task's adapters and feature adapters (as
    :class:`~mm_adapters.lightning.RetrievalModule` computes them)."""
    set_active_adapters(backbone.model, task.name if task.export.has_adapter else None)
    if modality == "image":
        embeddings = backbone.encode_image(batch["pixel_values"])
    else:
        embeddings = backbone.encode_text(batch)
    if task.head is not None:
        embeddings = F.normalize(task.head[modality](embeddings), dim=-1)
    return embeddings.float()


def rank(backbone: Backbone, queries: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Probabilities over the candidates for each query (softmax of the scaled cosine similarities)."""
    return (backbone.logit_scale.float() * queries @ candidates.T).softmax(dim=-1)


def _device(backbone: Backbone) -> torch.device:
    return next(backbone.parameters()).device


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def class_names_of(task: LoadedTask) -> list[str]:
    names = task.export.class_names
    return list(names) if names else [str(i) for i in range(task.head.out_features)]


def task_summary(task: LoadedTask) -> dict[str, Any]:
    """What ``GET /tasks`` and ``--list`` say about a task."""
    summary: dict[str, Any] = {
        "name": task.name,
        "task": task.kind,
        "inputs": list(task.export.inputs or ()),
        "backbone": task.export.backbone.name,
        "folder": str(task.export.folder),
    }
    if task.kind == "classification":
        summary["class_names"] = class_names_of(task)
    return summary
