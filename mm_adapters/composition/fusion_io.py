"""Saving and loading fusion layers, and the mm_adapters fusion format: a JSON file naming the fused adapters and a
safetensors file.

The fused adapters are saved and loaded on their own (``save_adapter`` / ``load_adapter``), as in AdapterHub.
:func:`save_fusion` and :func:`load_fusion` ask the format registry (AdapterHub's fusion folders register from
:mod:`mm_adapters.interop`); folders may be hub ids. Format 2 records the site positions (as adapter format 3).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import AdapterLoadError
from ..io import (
    FUSION_CONFIG_FILE,
    FUSION_WEIGHTS_FILE,
    HEAD_CONFIG_FILE,
    HEAD_FILE,
    LABELS_FILE,
    TASK_FILE,
    FileFormat,
    backbone_signature,
    check_positions,
    check_signature,
    load_detected,
    load_head,
    read_json_object,
    read_tensors,
    register_format,
    save_in_format,
    site_positions,
    write_weights_folder,
)
from ..serialization import copy_checked, site_tensors
from ..state import check_name, get_state
from .activation import activate_composition
from .fuse import Fuse
from .fusion import add_fusion, delete_fusion

CONFIG_FILE = FUSION_CONFIG_FILE
WEIGHTS_FILE = FUSION_WEIGHTS_FILE
FORMAT = "mm_adapters.fusion/2"
UNPOSITIONED_FORMATS = ("mm_adapters.fusion/1",)


def fusion_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The fusion's tensors under canonical keys ``{tower}.{layer}.{site}.{param}``, on the CPU."""
    return {k: t.detach().cpu().contiguous() for k, t in site_tensors(model, name, "fusions").items()}


def save_fusion(
    model: nn.Module,
    name: str,
    directory: str | os.PathLike,
    *,
    head: nn.Module | None = None,
    overwrite: bool = False,
    format: str = "mm_adapters",
    **options,
) -> Path:
    """Write fusion ``name`` (and optionally a task head) to ``directory``, atomically; an existing folder is
    replaced only with ``overwrite=True``. Save the fused adapters too, with ``save_adapter``.
    ``format="adapterhub"`` writes an AdapterHub 1.x fusion folder (no head)."""
    return save_in_format("fusion", format, model, name, directory, head=head, overwrite=overwrite, **options)


def load_fusion(
    model: nn.Module,
    directory: str | os.PathLike,
    name: str | None = None,
    *,
    head: nn.Module | None = None,
    set_active: bool = True,
    strict: bool = True,
) -> str:
    """Load a fusion folder (ours or AdapterHub's, or either by hub id) into a model that already has its adapters;
    return its name.

    Raises :class:`AdapterLoadError` naming the missing adapters when the model lacks any of them.
    """
    return load_detected("fusion", model, directory, name, head=head, set_active=set_active, strict=strict)


def save_mm_fusion(
    model: nn.Module, name: str, directory: str | os.PathLike, *, head: nn.Module | None, overwrite: bool
) -> Path:
    state = get_state(model)
    if name not in state.fusions:
        raise ValueError(f"No fusion named {name!r}; this model has {sorted(state.fusions)}.")
    document = {
        "format": FORMAT,
        "name": name,
        "adapters": list(state.fusions[name]),
        "backbone": backbone_signature(model, state.spec),
        "positions": site_positions(model, state.spec),
        "has_head": head is not None,
    }
    return write_weights_folder(
        directory, fusion_state_dict(model, name), document, head, overwrite,
        config_file=CONFIG_FILE, weights_file=WEIGHTS_FILE,
    )  # fmt: skip


def load_mm_fusion(
    model: nn.Module,
    folder: Path,
    name: str | None,
    *,
    head: nn.Module | None,
    set_active: bool,
    strict: bool,
) -> str:
    document = _read_config(folder)
    name = check_name(name if name is not None else document["name"])
    adapters = document["adapters"]
    state = get_state(model, create=True)
    missing = [a for a in adapters if a not in state.configs]
    if missing:
        raise AdapterLoadError(
            f"The fusion in {folder} fuses adapters {adapters}, but this model lacks {missing} (it has "
            f"{sorted(state.configs)}); load those first with mm_adapters.load_adapter."
        )
    check_signature(model, state.spec, document["backbone"], folder)
    if "positions" in document:
        check_positions(model, state.spec, document["positions"], folder, strict=strict)
    tensors = read_tensors(folder / WEIGHTS_FILE)
    hint = "does not fit the fused adapters' sites (were the adapters loaded with other configs?)"
    then = (lambda: load_head(head, folder)) if head is not None else None
    return install_fusion(model, adapters, name, tensors, folder / WEIGHTS_FILE, hint, set_active, then)


def install_fusion(
    model: nn.Module,
    adapters: list[str],
    name: str,
    tensors: dict,
    path: Path,
    hint: str,
    set_active: bool,
    then=None,
) -> str:
    """Add fusion ``name`` over ``adapters`` with the loaded ``tensors`` (and run ``then``, e.g. loading a head);
    on any error the fusion is deleted again, so a failed load leaves the model as it was."""
    add_fusion(model, adapters, name, set_active=False)
    try:
        copy_checked(site_tensors(model, name, "fusions"), tensors, path, hint)
        if then is not None:
            then()
    except Exception:
        delete_fusion(model, name)
        raise
    if set_active:
        activate_composition(model, Fuse(*adapters, name=name))
    return name


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise AdapterLoadError(
            f"{folder} has no {CONFIG_FILE}; pass a folder written by mm_adapters.save_fusion (or a hub id)."
        )
    document = read_json_object(path, "fusion")
    if document.get("format") not in (FORMAT, *UNPOSITIONED_FORMATS):
        raise AdapterLoadError(
            f"{path} is not a {FORMAT!r} file (nor an older {list(UNPOSITIONED_FORMATS)})."
        )
    if document["format"] == FORMAT and "positions" not in document:
        raise AdapterLoadError(f"{path}: missing 'positions' (where the fusion's sites sit).")
    adapters = document.get("adapters")
    if not isinstance(adapters, list) or not adapters or not all(isinstance(a, str) for a in adapters):
        raise AdapterLoadError(f"{path}: 'adapters' must be a non-empty list of adapter names.")
    if not isinstance(document.get("name"), str) or "backbone" not in document:
        raise AdapterLoadError(f"{path}: missing 'name' or 'backbone'.")
    return document


register_format(
    FileFormat(
        name="mm_adapters",
        kind="fusion",
        detect=lambda folder: (folder / CONFIG_FILE).is_file(),
        load=load_mm_fusion,
        save=save_mm_fusion,
        files=(CONFIG_FILE, WEIGHTS_FILE, HEAD_FILE, HEAD_CONFIG_FILE, LABELS_FILE, TASK_FILE),
        fallback=True,
    )
)
