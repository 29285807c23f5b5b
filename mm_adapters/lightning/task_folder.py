"""The task-export folder as a format of the registry: what :func:`~mm_adapters.lightning.export.export_adapter`
writes (an adapter or a fusion, a head, ``labels.json``, and ``task.json`` / ``README.md`` where written), loaded
onto a backbone for inference. The adapter or fusion part is read by whichever adapter / fusion format recognises it,
so an AdapterHub adapter folder loads here too (without a head of ours)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from ..backbones import Backbone
from ..composition import load_fusion
from ..data.vocabulary import CharVocabulary
from ..errors import AdapterLoadError
from ..io import (
    FUSION_CONFIG_FILE,
    HEAD_CONFIG_FILE,
    HEAD_FILE,
    LABELS_FILE,
    MODEL_CARD_FILE,
    TASK_FILE,
    FileFormat,
    formats,
    load_head,
    read_json_object,
    register_format,
)
from ..serialization import load_adapter
from .heads import build_head
from .method_weights import BACKBONE_FILE, LORA_DIR, load_method_weights


def load_task_folder(
    backbone: Backbone, folder: Path, *, adapters: Sequence[str | os.PathLike] = ()
) -> nn.Module | None:
    """Load an exported adapter (or a fusion, after the ``adapters`` folders it fuses) into ``backbone.model``
    (active, eval mode) and return its head, if any: an ``nn.Linear``, or the ``ModuleDict`` of feature adapters.
    The export of a full fine-tune or of LoRA (``--method full|lora``) also puts its backbone weights back."""
    head = build_head(folder)
    method = load_method_weights(backbone.model, folder)  # a full fine-tune's backbone or LoRA, if any
    if _is_fusion(folder):
        for adapter in adapters:
            load_adapter(backbone.model, adapter, set_active=False)
        try:
            load_fusion(backbone.model, folder, head=head)
        except AdapterLoadError as error:
            raise AdapterLoadError(
                f"{error} With load_for_inference, pass their folders as adapters=[...]."
            ) from None
    elif _is_adapter(folder):
        load_adapter(backbone.model, folder, head=head)
    elif head is not None:
        load_head(head, folder)
    elif method is None:
        raise FileNotFoundError(
            f"{folder} holds neither an adapter, a fusion nor a head; pass a folder export_adapter or save_fusion "
            "wrote (or its hub id)."
        )
    backbone.eval()
    if head is not None and (folder / LABELS_FILE).is_file():
        saved = read_json_object(folder / LABELS_FILE, "labels")
        if "class_names" in saved:
            head.class_names = list(saved["class_names"])
        if "vocabulary" in saved:
            head.vocabulary = CharVocabulary(tuple(saved["vocabulary"]))
    return head.eval() if head is not None else None


def is_task_folder(folder: Path) -> bool:
    """An export folder: an adapter or a fusion of a known format, a head, or a baseline's backbone weights."""
    return (
        _is_fusion(folder)
        or _is_adapter(folder)
        or (folder / HEAD_FILE).is_file()
        or (folder / BACKBONE_FILE).is_file()
        or (folder / LORA_DIR).is_dir()
    )


def _is_fusion(folder: Path) -> bool:
    return (folder / FUSION_CONFIG_FILE).is_file() or any(f.detect(folder) for f in formats("fusion"))


def _is_adapter(folder: Path) -> bool:
    return any(f.detect(folder) for f in formats("adapter"))


register_format(
    FileFormat(
        "mm_adapters", "task", is_task_folder, load_task_folder, files=(HEAD_FILE, HEAD_CONFIG_FILE, LABELS_FILE, TASK_FILE, MODEL_CARD_FILE, BACKBONE_FILE, f"{LORA_DIR}/*"),
        fallback=True,
    )
)  # fmt: skip
