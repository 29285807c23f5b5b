"""``task.json``: what an exported task folder needs to be used with nothing else.

:func:`~mm_adapters.lightning.export_adapter` writes it next to the adapter and head::

    {"format": "mm_adapters.task/1", "task": "classification",
     "inputs": ["image"],
     "backbone": {"name": "demo-vit", "pretrained": null, "max_length": 128, "family": "vit", "seed": 0},
     "preprocessing": {"image_size": 32, "image_mean": [...], "image_std": [...], "sample_rate": null,
                       "normalize_audio": null, "max_length": null, "tokenizer": null}}

``backbone`` holds what :func:`~mm_adapters.backbones.load_backbone` was called with (``backbone.source``), so
``load_backbone(**backbone)`` rebuilds it; ``preprocessing`` is what the training data code used, to check the
rebuilt backbone against. Class names and the CTC vocabulary stay in ``labels.json``. Exports written before this
file existed have none: :func:`read_task_description` returns None and the caller asks for the backbone by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..backbones import Backbone
from ..io import TASK_FILE

FORMAT = "mm_adapters.task/1"
TASK_KINDS = ("classification", "retrieval", "ctc", "seq2seq")
PREPROCESSING_FIELDS = (
    "image_size", "image_mean", "image_std", "sample_rate", "normalize_audio", "max_length", "tokenizer",
)  # fmt: skip


def describe_task(
    task_kind: str, backbone: Backbone, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``task.json`` document for a ``task_kind`` task trained on ``backbone``. ``details`` (what a runner
    knows: the recipe, the backbone arguments when the backbone was not built by ``load_backbone``) fill in what
    the backbone does not record; ``backbone.source`` wins over them."""
    if task_kind not in TASK_KINDS:
        raise ValueError(f"task_kind must be one of {TASK_KINDS}, got {task_kind!r}.")
    details = dict(details or {})
    given_backbone = dict(details.pop("backbone", None) or {})
    source = {**given_backbone, **(backbone.source or {})}
    return {
        "format": FORMAT,
        "task": task_kind,
        "inputs": task_inputs(task_kind, backbone.modalities),
        "backbone": {
            "name": source.get("name"),
            "pretrained": source.get("pretrained"),
            "max_length": source.get("max_length"),
            "family": backbone.family,
            **({"seed": source["seed"]} if "seed" in source else {}),
        },
        "preprocessing": preprocessing_of(backbone),
        **details,
    }


def task_inputs(task_kind: str, modalities: tuple[str, ...]) -> list[str]:
    """What a task reads: both towers for retrieval, audio for speech tasks, else the backbone's one input (the
    image for an image-text backbone, whose classification features are image embeddings)."""
    if task_kind == "retrieval":
        return ["image", "text"]
    if task_kind in ("ctc", "seq2seq"):
        return ["audio"]
    return ["image"] if "image" in modalities else list(modalities[:1])


def preprocessing_of(backbone: Backbone) -> dict[str, Any]:
    """The backbone's preprocessing as JSON values (the tokenizer by its name or path)."""
    found = {name: getattr(backbone.preprocessing, name) for name in PREPROCESSING_FIELDS}
    for name in ("image_mean", "image_std"):
        found[name] = None if found[name] is None else [float(v) for v in found[name]]
    tokenizer = found["tokenizer"]
    found["tokenizer"] = (
        None if tokenizer is None else getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    )
    return found


def write_task_description(folder: str | os.PathLike, description: Mapping[str, Any]) -> None:
    (Path(folder) / TASK_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


def read_task_description(folder: str | os.PathLike) -> dict[str, Any] | None:
    """``folder``'s task.json, or None for an export written before it existed. ValueError for another format."""
    path = Path(folder) / TASK_FILE
    if not path.is_file():
        return None
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path} holds a JSON {type(document).__name__}, not an object; {_REWRITE}")
    if document.get("format") != FORMAT:
        raise ValueError(f"{path} has format {document.get('format')!r}; this version reads {FORMAT!r}.")
    fields = {"task": str, "inputs": list, "backbone": dict}
    wrong = [name for name, kind in fields.items() if not isinstance(document.get(name), kind)]
    if wrong:
        shapes = ", ".join(f"{name!r} ({fields[name].__name__})" for name in wrong)
        raise ValueError(f"{path} lacks {shapes}, or has it of another type; {_REWRITE}")
    return document


_REWRITE = (
    "export the run again (export_adapter), or delete task.json and pass the backbone by name "
    "(mm-adapters predict/serve --backbone NAME)."
)
