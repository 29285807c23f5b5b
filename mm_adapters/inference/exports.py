"""Reading exported task folders for inference: what each one is, and which backbone it needs.

An export written by :func:`~mm_adapters.lightning.export_adapter` carries ``task.json`` (the task, its inputs and
how to load its backbone again). An older export has none: its task is read from ``labels.json`` and the head, and
the backbone must be named by the caller (``--backbone``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AdapterLoadError
from ..io import ADAPTER_CONFIG_FILE as CONFIG_FILE
from ..io import FUSION_CONFIG_FILE, HEAD_CONFIG_FILE, HEAD_FILE, LABELS_FILE, TASK_FILE, resolve_folder
from ..lightning.task_description import read_task_description
from ..serialization import read_adapter_config


class UsageError(ValueError):
    """A mistake in what the caller asked for (an export, an input, an option): the message says what to do.

    ``field`` names the request field or command-line argument at fault, for a server's 4xx answer."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class BackboneKey:
    """What loads a backbone: exports with equal keys share one backbone (and one forward pass)."""

    name: str
    pretrained: str | None = None
    max_length: int | None = None
    seed: int = 0
    seq2seq: bool = False
    """Whisper's whole encoder-decoder (``load_whisper_seq2seq``) rather than ``load_backbone``'s encoder."""


@dataclass
class TaskExport:
    """One exported task folder, read but not loaded."""

    folder: Path
    name: str
    """The task's name: its adapter's name (a head-only export: its folder's name)."""
    kind: str
    """classification, retrieval, ctc or seq2seq."""
    backbone: BackboneKey
    has_adapter: bool
    inputs: tuple[str, ...] | None = None
    """What the task reads (None for an old export: decided by the backbone's modalities once loaded)."""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None
    vocabulary: list[str] | None = None
    generation: dict[str, Any] = field(default_factory=dict)


def read_export(folder: str | os.PathLike, backbone: str | None = None) -> TaskExport:
    """Read ``folder`` (an export_adapter folder). ``backbone`` names the backbone for an old export without
    task.json, or replaces the recorded one. Raises :class:`UsageError` saying what is wrong."""
    try:  # a hub id ("org/name" or "org/name@revision") comes back as its cached snapshot
        path = resolve_folder(str(folder) if isinstance(folder, str) else Path(folder).expanduser(), "task")
    except AdapterLoadError as error:
        raise UsageError(str(error), "export") from None
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise UsageError(f"Export {path} {what}; pass the folder export_adapter wrote (e.g. runs/<recipe>/adapter).",
                         "export")  # fmt: skip
    if (path / FUSION_CONFIG_FILE).is_file():
        raise UsageError(
            f"{path} is a fusion folder; predict and serve take exported task folders.", "export"
        )
    has_adapter = (path / CONFIG_FILE).is_file()
    if not has_adapter and not (path / HEAD_FILE).is_file():
        raise UsageError(
            f"{path} is not an exported task: it has neither {CONFIG_FILE} nor {HEAD_FILE} (export_adapter writes "
            f"them, with {TASK_FILE}).",
            "export",
        )
    try:
        task = read_task_description(path)
    except (ValueError, json.JSONDecodeError) as error:
        raise UsageError(f"Cannot read {path / TASK_FILE}: {error}", "export") from None
    labels = _json(path / LABELS_FILE) or {}
    name = read_adapter_config(path)["name"] if has_adapter else _folder_name(path)
    if task is None:
        return _old_export(path, name, has_adapter, labels, backbone)
    recorded = task["backbone"]
    key = BackboneKey(
        name=backbone or recorded.get("name"),
        pretrained=None if backbone else recorded.get("pretrained"),
        max_length=recorded.get("max_length"),
        seed=int(recorded.get("seed", 0)),
        seq2seq=task["task"] == "seq2seq",
    )
    if not key.name:
        raise UsageError(f"{path / TASK_FILE} does not name its backbone; pass --backbone NAME.", "backbone")
    return TaskExport(
        path, name, task["task"], key, has_adapter, tuple(task["inputs"]), dict(task.get("preprocessing") or {}),
        labels.get("class_names"), labels.get("vocabulary"), dict(task.get("generation") or {}),
    )  # fmt: skip


def _old_export(
    path: Path, name: str, has_adapter: bool, labels: dict[str, Any], backbone: str | None
) -> TaskExport:
    """An export from before task.json: the task from labels.json and the head, the backbone from the caller."""
    if backbone is None:
        raise UsageError(
            f"{path} has no {TASK_FILE} (it was exported before exports described themselves), so its backbone "
            "is unknown: pass --backbone NAME, the backbone it was trained on (e.g. demo-vit, minilm, "
            "whisper-tiny.en, a hub id or a local folder).",
            "backbone",
        )
    if labels.get("task") == "ctc":
        kind = "ctc"
    elif labels.get("task") == "classification" or _is_linear_head(path):
        kind = "classification"
    else:
        kind = "retrieval"  # no head, or CLIP-Adapter's feature adapters
    return TaskExport(
        path, name, kind, BackboneKey(backbone), has_adapter, None, {}, labels.get("class_names"),
        labels.get("vocabulary"),
    )  # fmt: skip


def _is_linear_head(path: Path) -> bool:
    return (path / HEAD_FILE).is_file() and not (path / HEAD_CONFIG_FILE).is_file()


def _folder_name(path: Path) -> str:
    """A head-only export's task name: its folder, or the run folder around a folder named ``adapter``."""
    resolved = path.resolve()
    return resolved.parent.name if resolved.name == "adapter" else resolved.name


def _json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"Cannot read {path}: {error}; export the run again.", "export") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path} is not a JSON object; export the run again.", "export")
    return document


def unique_names(exports: list[TaskExport]) -> list[TaskExport]:
    """Exports whose names clash (two runs of one recipe) are renamed after their run folders."""
    counts: dict[str, int] = {}
    for export in exports:
        counts[export.name] = counts.get(export.name, 0) + 1
    for export in exports:
        if counts[export.name] > 1:
            export.name = _folder_name(export.folder)
    names = [export.name for export in exports]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UsageError(f"Several exports are named {duplicates} even after their folders; pass each once.",
                         "export")  # fmt: skip
    return exports
