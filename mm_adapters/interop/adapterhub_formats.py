"""AdapterHub's adapter, fusion and head folders as formats of the registry (:mod:`mm_adapters.io.registry`), so
``load_adapter`` / ``load_fusion`` read them and ``save_adapter(..., format="adapterhub")`` writes them."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ..errors import AdapterLoadError
from ..io import FileFormat, register_format
from .adapterhub_folders import (
    CONFIG_FILE,
    FUSION_CONFIG_FILE,
    FUSION_WEIGHTS,
    HEAD_CONFIG_FILE,
    HEAD_WEIGHTS,
    WEIGHTS,
    is_adapterhub_folder,
    is_adapterhub_fusion_folder,
    load_adapterhub_adapter,
    load_adapterhub_fusion,
    load_adapterhub_head,
    save_adapterhub_adapter,
    save_adapterhub_fusion,
)

FORMAT = "adapterhub"


def _no_head(head: nn.Module | None, kind: str, where: object) -> None:
    if head is not None:
        raise ValueError(
            f"format='adapterhub' {kind}s carry no head of ours ({where}); save or load the head with the "
            "'mm_adapters' format, or an AdapterHub head with mm_adapters.interop.load_adapterhub_head."
        )


def load_adapter_folder(
    model: nn.Module,
    folder: Path,
    name: str | None,
    *,
    head: nn.Module | None,
    set_active: bool,
    strict: bool,
) -> str:
    if head is not None:
        raise AdapterLoadError(
            f"{folder} is an AdapterHub folder; load its head with mm_adapters.interop.load_adapterhub_head."
        )
    return load_adapterhub_adapter(model, folder, name, set_active=set_active)


def save_adapter_folder(
    model: nn.Module, name: str, directory: str | os.PathLike, *, head: nn.Module | None, overwrite: bool,
    pickled_copy: bool = True,
) -> Path:  # fmt: skip
    _no_head(head, "adapter", directory)
    return save_adapterhub_adapter(model, name, directory, overwrite=overwrite, pickled_copy=pickled_copy)


def load_fusion_folder(
    model: nn.Module,
    folder: Path,
    name: str | None,
    *,
    head: nn.Module | None,
    set_active: bool,
    strict: bool,
) -> str:
    if head is not None:
        raise AdapterLoadError(f"{folder} is an AdapterHub fusion folder; it has no head of ours to load.")
    return load_adapterhub_fusion(model, folder, name, set_active=set_active)


def save_fusion_folder(
    model: nn.Module, name: str, directory: str | os.PathLike, *, head: nn.Module | None, overwrite: bool,
    pickled_copy: bool = True,
) -> Path:  # fmt: skip
    _no_head(head, "fusion", directory)
    return save_adapterhub_fusion(model, name, directory, overwrite=overwrite, pickled_copy=pickled_copy)


register_format(
    FileFormat(
        FORMAT, "adapter", is_adapterhub_folder, load_adapter_folder, save_adapter_folder,
        files=(CONFIG_FILE, *WEIGHTS, HEAD_CONFIG_FILE, *HEAD_WEIGHTS),
    )
)  # fmt: skip
register_format(
    FileFormat(
        FORMAT, "fusion", is_adapterhub_fusion_folder, load_fusion_folder, save_fusion_folder,
        files=(FUSION_CONFIG_FILE, *FUSION_WEIGHTS),
    )
)  # fmt: skip
register_format(
    FileFormat(
        FORMAT, "head", lambda folder: (folder / HEAD_CONFIG_FILE).is_file() and any(
            (folder / w).is_file() for w in HEAD_WEIGHTS
        ), load_adapterhub_head, files=(HEAD_CONFIG_FILE, *HEAD_WEIGHTS),
    )
)  # fmt: skip
