"""What a finished run exports: the adapter and head, plus the backbone weights a baseline method trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import write_directory_atomically
from ..lightning import AdapterTaskModule, export_adapter
from ..lightning.method_weights import save_method_weights
from ..lightning.task_description import describe_task, write_task_description


def export_run(module: AdapterTaskModule, folder: Path, method: str, details: dict[str, Any]) -> Path:
    """The adapter and head (:func:`~mm_adapters.lightning.export_adapter`), plus the backbone weights a full
    fine-tune or LoRA trained (``backbone.safetensors``, ``lora/``); a module without a head (seq2seq) exports
    those weights and its ``task.json`` alone, written atomically like every export. ``load_for_inference``
    reloads every kind."""
    if method in ("full", "lora") and getattr(module, "head", None) is None:

        def fill(target: Path) -> None:
            if module.task_kind:
                write_task_description(target, describe_task(module.task_kind, module.backbone, details))
            save_method_weights(module.backbone.model, target, method)

        return write_directory_atomically(folder, fill, overwrite=True)
    folder = export_adapter(module, folder, details=details)
    save_method_weights(module.backbone.model, folder, method)
    return folder
