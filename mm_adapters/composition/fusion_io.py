"""Saving and loading fusion layers: a JSON file naming the fused adapters and a safetensors file.

The fused adapters are saved and loaded on their own (``save_adapter`` / ``load_adapter``), as in AdapterHub.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import AdapterLoadError
from ..serialization import (
    _check_signature,
    _load_head,
    _read_tensors,
    copy_checked,
    read_json_object,
    site_tensors,
    write_weights_folder,
)
from ..state import backbone_signature, check_name, get_state
from .activation import activate_composition
from .fuse import Fuse
from .fusion import add_fusion, delete_fusion

CONFIG_FILE = "fusion_config.json"
WEIGHTS_FILE = "fusion_model.safetensors"
HEAD_FILE = "head.safetensors"
FORMAT = "mm_adapters.fusion/1"


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
) -> Path:
    """Write fusion ``name`` (and optionally a task head) to ``directory``, atomically; an existing folder is
    replaced only with ``overwrite=True``. Save the fused adapters too, with ``save_adapter``.
    ``format="adapterhub"`` writes an AdapterHub 1.x fusion folder (no head)."""
    if format == "adapterhub" and head is None:
        from ..interop import save_adapterhub_fusion

        return save_adapterhub_fusion(model, name, directory, overwrite=overwrite)
    if format != "mm_adapters":
        raise ValueError(f"format must be 'mm_adapters' or 'adapterhub' (without a head), got {format!r}.")
    state = get_state(model)
    if name not in state.fusions:
        raise ValueError(f"No fusion named {name!r}; this model has {sorted(state.fusions)}.")
    tensors = fusion_state_dict(model, name)
    document = {
        "format": FORMAT,
        "name": name,
        "adapters": list(state.fusions[name]),
        "backbone": backbone_signature(model, state.spec),
        "has_head": head is not None,
    }

    return write_weights_folder(
        directory, tensors, document, head, overwrite, config_file=CONFIG_FILE, weights_file=WEIGHTS_FILE
    )


def load_fusion(
    model: nn.Module,
    directory: str | os.PathLike,
    name: str | None = None,
    *,
    head: nn.Module | None = None,
    set_active: bool = True,
) -> str:
    """Load a fusion saved by :func:`save_fusion` into a model that already has its adapters; return its name.

    Raises :class:`AdapterLoadError` naming the missing adapters when the model lacks any of them.
    """
    folder = Path(directory)
    from ..interop import is_adapterhub_fusion_folder, load_adapterhub_fusion

    if head is None and not (folder / CONFIG_FILE).is_file() and is_adapterhub_fusion_folder(folder):
        return load_adapterhub_fusion(model, folder, name, set_active=set_active)
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
    _check_signature(model, document["backbone"], folder)
    tensors = _read_tensors(folder / WEIGHTS_FILE)
    hint = "does not fit the fused adapters' sites (were the adapters loaded with other configs?)"
    then = (lambda: _load_head(head, folder)) if head is not None else None
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
            f"{folder} has no {CONFIG_FILE}; pass a folder written by mm_adapters.save_fusion."
        )
    document = read_json_object(path, "fusion")
    if document.get("format") != FORMAT:
        raise AdapterLoadError(f"{path} is not a {FORMAT!r} file.")
    adapters = document.get("adapters")
    if not isinstance(adapters, list) or not adapters or not all(isinstance(a, str) for a in adapters):
        raise AdapterLoadError(f"{path}: 'adapters' must be a non-empty list of adapter names.")
    if not isinstance(document.get("name"), str) or "backbone" not in document:
        raise AdapterLoadError(f"{path}: missing 'name' or 'backbone'.")
    return document
