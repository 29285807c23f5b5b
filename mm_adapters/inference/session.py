"""An inference session: exported tasks on their backbones, answering per input for the tasks asked.

    session = InferenceSession.from_exports(["runs/vit_cifar/adapter"])
    results = session.predict([InputItem("cat.png", "image", "cat.png")], top_k=3)
    results[0]["cifar10"]  # {"label": "cat", "probability": 0.91, "top_k": [...]}

Exports on the same backbone (same name, tag, max length and seed) share one loaded backbone, and their
classification tasks one forward pass. Tasks can be added and removed while the session lives (the server's
``POST /tasks`` and ``DELETE /tasks/{name}``); callers that share a session across threads hold ``session.lock``
around every call (:meth:`predict` and the add/remove calls take it themselves).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch

from ..backbones import Backbone
from ..lightning.task_description import task_inputs
from .backbone import check_preprocessing, load_task_backbone
from .batches import InputItem, collate, encode_candidate_texts, to_device
from .exports import BackboneKey, TaskExport, UsageError, read_export, unique_names
from .tasks import LoadedTask, class_names_of, classify, embed, load_task, rank, transcribe, unload_task


class InferenceSession:
    """Loaded backbones and the tasks on them; :meth:`predict` answers per input."""

    def __init__(self, device: str | torch.device = "cpu", max_new_tokens: int | None = None) -> None:
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens
        self.backbones: dict[BackboneKey, Backbone] = {}
        self.tasks: dict[str, LoadedTask] = {}
        self.lock = threading.RLock()

    @classmethod
    def from_exports(
        cls, folders: Sequence[str], backbone: str | None = None, device: str = "cpu", **options: Any
    ) -> InferenceSession:
        session = cls(device, **options)
        exports = unique_names([read_export(folder, backbone) for folder in folders])
        for export in exports:
            session.add(export)
        return session

    # -- tasks ------------------------------------------------------------------------------------------------------
    def add(self, export: TaskExport | str, backbone: str | None = None) -> LoadedTask:
        """Load an export (a folder, or one read with :func:`read_export`); UsageError for a taken name."""
        export = read_export(export, backbone) if not isinstance(export, TaskExport) else export
        with self.lock:
            if export.name in self.tasks:
                raise UsageError(f"A task named {export.name!r} is already loaded; remove it first.", "name")
            loaded = self._backbone(export.backbone)
            if export.inputs is None:  # an export from before task.json
                export.inputs = tuple(task_inputs(export.kind, loaded.modalities))
            check_preprocessing(loaded, export.preprocessing, str(export.folder))
            task = load_task(loaded, export, self.max_new_tokens)
            self.tasks[export.name] = task
            return task

    def remove(self, name: str) -> None:
        with self.lock:
            task = self.tasks.pop(self.known([name])[0])
            unload_task(self.backbones[task.export.backbone], task)
            if not any(t.export.backbone == task.export.backbone for t in self.tasks.values()):
                del self.backbones[task.export.backbone]

    def _backbone(self, key: BackboneKey) -> Backbone:
        if key not in self.backbones:
            self.backbones[key] = load_task_backbone(key).to(self.device)
        return self.backbones[key]

    def known(self, names: Sequence[str]) -> list[str]:
        """``names``, checked: UsageError naming the first that is not loaded."""
        unknown = [name for name in names if name not in self.tasks]
        if unknown:
            raise UsageError(f"Unknown task {unknown[0]!r}; loaded tasks are {sorted(self.tasks)}.", "task")
        return list(names)

    # -- predictions ------------------------------------------------------------------------------------------------
    def check_inputs(self, names: Sequence[str], modality: str) -> None:
        """UsageError for an unknown task, or one that cannot take ``modality`` inputs."""
        for name in self.known(names):
            task = self.tasks[name]
            if modality not in (task.export.inputs or ()):
                raise UsageError(
                    f"Task {name!r} ({task.kind}) reads {' or '.join(task.export.inputs or ())} inputs, not {modality}.",
                    modality,
                )

    def predict(
        self,
        items: Sequence[InputItem],
        tasks: Sequence[str] | None = None,
        top_k: int = 1,
        candidates: Sequence[Any] | None = None,
    ) -> list[dict[str, dict[str, Any]]]:
        """``[{task: answer}]`` per item, for ``tasks`` (default: all). Items share one modality. Answers:
        classification ``label``, ``probability``, ``top_k``; ctc / seq2seq ``transcript``; retrieval the ranked
        ``candidates`` (captions for images, images for texts) or, without candidates, the ``embedding``."""
        if not items:
            return []
        modality = items[0].modality
        with self.lock:
            names = self.known(list(tasks) if tasks is not None else list(self.tasks))
            self.check_inputs(names, modality)
            results: list[dict[str, dict[str, Any]]] = [{} for _ in items]
            for key, backbone in self.backbones.items():
                group = [self.tasks[name] for name in names if self.tasks[name].export.backbone == key]
                if group:
                    self._predict_group(backbone, group, items, top_k, candidates, results)
            return [{name: row[name] for name in names} for row in results]

    def _predict_group(self, backbone, group, items, top_k, candidates, results) -> None:
        modality = items[0].modality
        batches: dict[bool, dict] = {}

        def batch_for(task: LoadedTask) -> dict:
            crop = task.kind == "retrieval" and modality == "image"  # as the retrieval recipe trains
            if crop not in batches:
                batches[crop] = to_device(collate(backbone, items, crop=crop), self.device)
            return batches[crop]

        classifiers = [task for task in group if task.kind == "classification"]
        if classifiers:
            for name, probabilities in classify(backbone, classifiers, batch_for(classifiers[0])).items():
                names = class_names_of(self.tasks[name])
                for row, answer in zip(results, top_answers(probabilities, names, top_k), strict=True):
                    row[name] = answer
        for task in group:
            if task.kind in ("ctc", "seq2seq"):
                for row, text in zip(results, transcribe(backbone, task, batch_for(task)), strict=True):
                    row[task.name] = {"transcript": text}
            elif task.kind == "retrieval":
                queries = embed(backbone, task, batch_for(task), modality)
                if candidates is None:
                    for row, vector in zip(results, queries.tolist(), strict=True):
                        row[task.name] = {"embedding": vector}
                    continue
                names, keys = self._candidates(backbone, task, modality, candidates)
                answers = top_answers(rank(backbone, queries, keys), names, top_k)
                for row, answer in zip(results, answers, strict=True):
                    row[task.name] = answer

    def _candidates(self, backbone, task, modality, candidates) -> tuple[list[str], torch.Tensor]:
        """The other modality's embeddings to rank: caption texts for images, image items for texts."""
        if modality == "image":
            texts = [str(c) for c in candidates]
            batch = to_device(encode_candidate_texts(backbone, texts), self.device)
            return texts, embed(backbone, task, batch, "text")
        images = [c if isinstance(c, InputItem) else InputItem(str(c), "image", c) for c in candidates]
        batch = to_device(collate(backbone, images, crop=True), self.device)
        return [item.id for item in images], embed(backbone, task, batch, "image")


def top_answers(probabilities: torch.Tensor, names: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    """Per row: the best name, its probability, and the ``top_k`` best as ``[{label, probability}]``."""
    k = max(1, min(top_k, probabilities.shape[-1]))
    values, indices = probabilities.cpu().topk(k, dim=-1)
    answers = []
    for row_values, row_indices in zip(values.tolist(), indices.tolist(), strict=True):
        ranked = [
            {"label": names[i], "probability": round(p, 6)}
            for p, i in zip(row_values, row_indices, strict=True)
        ]
        answers.append(
            {"label": ranked[0]["label"], "probability": ranked[0]["probability"], "top_k": ranked}
        )
    return answers
