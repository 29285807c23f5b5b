"""Export a trained adapter with its task head, and load it back for inference.

Reload for inference in a few lines (the backbone must be the one the adapter was trained on)::

    import torch
    from mm_adapters.backbones import load_backbone
    from mm_adapters.data import ImageTransform
    from mm_adapters.lightning import load_for_inference

    backbone = load_backbone("demo-vit")  # or "google/vit-base-patch16-224", a local folder, ...
    head = load_for_inference(backbone, "runs/vit_cifar/adapter")  # adds the adapter, returns the linear head
    transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std)
    pixel_values = torch.stack([transform(image) for image in images])  # PIL images, paths or arrays
    with torch.no_grad():
        predictions = head(backbone({"pixel_values": pixel_values})).argmax(dim=-1)

Retrieval adapters have no head: ``load_for_inference`` returns None and ``backbone.encode_image`` /
``backbone.encode_text`` give the adapted embeddings. CLIP-Adapter's embedding adapters (a ``ModuleDict`` of
:class:`~mm_adapters.composition.FeatureAdapter` as the head) come back as that ``ModuleDict``: apply
``head["image"]`` / ``head["text"]`` to those embeddings. A fusion folder (``save_fusion``) reloads with the folders
of the adapters it fuses: ``load_for_inference(backbone, "fusion", adapters=["adapters/sst2", "adapters/agnews"])``.

A linear head is known from its tensors; any other head that :func:`export_adapter` knows (the feature adapters) is
described in ``head_config.json`` next to ``head.safetensors``. A classification head comes back with
``class_names`` (id -> name: ``head.class_names[predictions[0]]``), a CTC head with its ``vocabulary``
(``head.vocabulary.decode_ctc(ids)``), read from the folder's ``labels.json``. Loading lives in
:mod:`mm_adapters.lightning.task_folder` (the task-export format of the registry); the folder's ``README.md`` is a hub
model card when the runner wrote it (:func:`mm_adapters.io.model_card.write_model_card`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data.vocabulary import CharVocabulary
from ..injection import active_adapters, list_adapters
from ..io import HEAD_CONFIG_FILE, LABELS_FILE, save_head, write_directory_atomically, write_json
from ..serialization import save_adapter
from .base import AdapterTaskModule
from .heads import FEATURE_ADAPTERS, build_head, head_description
from .task_description import describe_task, write_task_description

__all__ = ["FEATURE_ADAPTERS", "build_head", "export_adapter", "head_description", "labels_of"]


def export_adapter(
    module: AdapterTaskModule,
    directory: str | os.PathLike,
    name: str | None = None,
    overwrite: bool = True,
    details: Mapping[str, Any] | None = None,
) -> Path:
    """Save the module's adapter (the active one unless ``name`` is given) and its ``head`` to ``directory``.

    Without adapters (a linear probe) only ``head.safetensors`` is written. The class names of a classification
    module (or the vocabulary of a CTC module) go to ``labels.json``; the task, backbone and preprocessing to
    ``task.json`` (``details``: more of it, see :func:`~mm_adapters.lightning.task_description.describe_task`).
    """
    head = getattr(module, "head", None)
    model = module.backbone.model
    description = head_description(head)
    labels = labels_of(module)
    task = describe_task(module.task_kind, module.backbone, details) if module.task_kind else None
    if not list_adapters(model):
        if head is None:
            raise ValueError("Nothing to export: the module has neither an adapter nor a head.")

        def fill(folder: Path) -> None:
            save_head(head, folder)
            _write_description(folder, description)
            _write_labels(folder, labels)
            _write_task(folder, task)

        return write_directory_atomically(Path(directory), fill, overwrite)
    if name is None:
        active = active_adapters(model)
        if len(active) != 1:
            raise ValueError(f"Pass the adapter name to export; active adapters are {list(active)}.")
        name = active[0]
    if description is None and labels is None and task is None:
        return save_adapter(model, name, directory, head=head, overwrite=overwrite)

    def fill_with_description(folder: Path) -> None:
        save_adapter(model, name, folder, head=head, overwrite=True)
        _write_description(folder, description)
        _write_labels(folder, labels)
        _write_task(folder, task)

    return write_directory_atomically(Path(directory), fill_with_description, overwrite)


def labels_of(module: AdapterTaskModule) -> dict[str, Any] | None:
    """What maps the head's output ids to names: class names, or the CTC characters (id 0 is the blank); the one
    mapper behind ``labels.json`` and the runner's ``metrics.json``."""
    vocabulary = getattr(module, "vocabulary", None)
    if isinstance(vocabulary, CharVocabulary):
        return {"task": "ctc", "blank_id": vocabulary.blank_id, "vocabulary": list(vocabulary.chars)}
    names = getattr(module, "class_names", None)
    return {"task": "classification", "class_names": list(names)} if names is not None else None


def _write_description(folder: Path, description: dict[str, Any] | None) -> None:
    if description is not None:
        write_json(folder / HEAD_CONFIG_FILE, description)


def _write_task(folder: Path, task: dict[str, Any] | None) -> None:
    if task is not None:
        write_task_description(folder, task)


def _write_labels(folder: Path, labels: dict[str, Any] | None) -> None:
    if labels is not None:
        write_json(folder / LABELS_FILE, labels)
