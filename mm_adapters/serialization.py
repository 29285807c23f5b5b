"""Saving and loading single adapters, and the mm_adapters adapter format (a JSON config and a safetensors file,
never the backbone, never pickle).

:func:`save_adapter` and :func:`load_adapter` ask the format registry (:mod:`mm_adapters.io.registry`): AdapterHub's
folders register from :mod:`mm_adapters.interop`, so this module names no other format. Folders may be hub ids
(``"org/name@revision"``, :func:`mm_adapters.io.resolve_folder`).

Format 3 records where the adapter's sites sit (``positions``, see :mod:`mm_adapters.io.signature`); formats 1 and 2
did not, and load as before.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .config import AdapterConfig
from .errors import AdapterLoadError
from .injection import add_adapter, delete_adapter, set_active_adapters
from .io import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
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
    without_shared_memory,
    write_weights_folder,
)
from .plugins import shared_adapter_builder
from .state import check_name, get_state, iter_sites

CONFIG_FILE = ADAPTER_CONFIG_FILE
WEIGHTS_FILE = ADAPTER_WEIGHTS_FILE
FORMAT = "mm_adapters.adapter/3"
# Format 1 (before placements were saved in the config): sequential adapters read the sublayer output, parallel ones
# the sublayer input, and up-projections started at zero. Those folders load with exactly that math.
LEGACY_FORMATS = {"mm_adapters.adapter/1": {"sequential": "output", "parallel": "sublayer_input"}}
# Format 2: placements in the config, site positions not recorded.
UNPOSITIONED_FORMATS = ("mm_adapters.adapter/1", "mm_adapters.adapter/2")
_CONFIG_KEYS = {"format", "name", "config", "backbone", "positions", "has_head", "share"}


def site_tensors(model: nn.Module, name: str, kind: str = "adapters") -> dict[str, torch.Tensor]:
    """The live tensors of adapter (or, with ``kind="fusions"``, fusion) ``name`` at every site, under canonical
    keys ``{tower}.{layer}.{site}.{param}`` that do not depend on module paths."""
    tensors = {}
    for site in iter_sites(model):
        modules = getattr(site, kind)
        if name in modules:
            prefix = f"{site.tower}.{site.layer_index}.{site.site}"
            for key, tensor in modules[name].state_dict().items():
                tensors[f"{prefix}.{key}"] = tensor
    return tensors


def adapter_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The adapter's tensors under canonical keys ``{tower}.{layer}.{site}.{param}``, on the CPU."""
    return {key: tensor.detach().cpu().contiguous() for key, tensor in site_tensors(model, name).items()}


def copy_checked(
    expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], path: Path, hint: str
) -> None:
    """Copy ``tensors`` (read from ``path``) into ``expected`` after checking that names and shapes match."""
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise AdapterLoadError(f"{path} {hint}: missing {missing[:5]}, unexpected {unexpected[:5]}.")
    for key, param in expected.items():
        if tensors[key].shape != param.shape:
            raise AdapterLoadError(
                f"{key}: saved shape {tuple(tensors[key].shape)}, expected {tuple(param.shape)}."
            )
    with torch.no_grad():
        for key, param in expected.items():
            param.copy_(tensors[key])


def save_adapter(
    model: nn.Module,
    name: str,
    directory: str | os.PathLike,
    *,
    head: nn.Module | None = None,
    overwrite: bool = False,
    format: str = "mm_adapters",
    **options,
) -> Path:
    """Write adapter ``name`` (and optionally a task head) to ``directory``; atomic, and refuses to overwrite
    an existing folder unless ``overwrite=True``. ``format="adapterhub"`` writes an AdapterHub 1.x folder instead
    (no head), which AdapterHub's ``load_adapter(folder)`` reads with its defaults; ``options`` go to the format
    (AdapterHub: ``pickled_copy=False`` leaves out the ``pytorch_adapter.bin`` it reads by default)."""
    return save_in_format(
        "adapter", format, model, name, directory, head=head, overwrite=overwrite, **options
    )


def load_adapter(
    model: nn.Module,
    directory: str | os.PathLike,
    name: str | None = None,
    *,
    head: nn.Module | None = None,
    set_active: bool = True,
    strict: bool = True,
) -> str:
    """Load an adapter folder (ours, an AdapterHub 1.x one, or either by hub id ``"org/name@revision"``) into
    ``model``; return its name.

    The file is checked against the model (family, hidden size, layer count, where its sites sit, tensor names and
    shapes) before anything is changed; a mismatch raises :class:`AdapterLoadError` saying what differs.
    ``strict=False`` loads an adapter whose recorded sites moved since it was saved, with a warning.
    """
    return load_detected("adapter", model, directory, name, head=head, set_active=set_active, strict=strict)


def save_mm_adapter(
    model: nn.Module, name: str, directory: str | os.PathLike, *, head: nn.Module | None, overwrite: bool
) -> Path:
    """Our format: ``adapter_config.json`` (config, backbone signature, site positions) + safetensors (+ head)."""
    state = get_state(model)
    if name not in state.configs:
        raise ValueError(f"No adapter named {name!r} on this model; it has {sorted(state.configs)}.")
    document = {
        "format": FORMAT,
        "name": name,
        "config": state.configs[name].to_dict(),
        "backbone": backbone_signature(model, state.spec),
        "positions": site_positions(model, state.spec),
        "has_head": head is not None,
    }
    if name in state.shared:  # cross-modal adapter: both towers' adapters hold the shared tensors
        document["share"] = state.shared[name]
    tensors = without_shared_memory(adapter_state_dict(model, name))
    return write_weights_folder(
        directory, tensors, document, head, overwrite, config_file=CONFIG_FILE, weights_file=WEIGHTS_FILE
    )


def load_mm_adapter(
    model: nn.Module,
    folder: Path,
    name: str | None,
    *,
    head: nn.Module | None,
    set_active: bool,
    strict: bool,
) -> str:
    """Load a folder :func:`save_mm_adapter` wrote (any format version)."""
    document = read_adapter_config(folder)
    name = check_name(name if name is not None else document["name"])
    config = config_from_document(document)
    spec = get_state(model, create=True).spec
    check_signature(model, spec, document["backbone"], folder)
    if "positions" in document:
        check_positions(model, spec, document["positions"], folder, strict=strict)
    tensors = read_tensors(folder / WEIGHTS_FILE)
    previously_active = get_state(model).setup
    if document.get("share") is None:
        add_adapter(model, name, config, set_active=False)
    else:  # towers share parameters: rebuilt by the builder registered for that share mode
        try:
            builder = shared_adapter_builder(document["share"])
        except ValueError as error:
            raise AdapterLoadError(f"{folder / CONFIG_FILE}: {error}") from error
        builder(model, name, config, share=document["share"], set_active=False)
    try:
        copy_checked(site_tensors(model, name), tensors, folder / WEIGHTS_FILE, "does not match its config")
        if head is not None:
            load_head(head, folder)
    except Exception:
        delete_adapter(model, name)
        raise
    set_active_adapters(model, name if set_active else previously_active)
    return name


def read_adapter_config(folder: Path) -> dict:
    """Parse and sanity-check ``adapter_config.json`` in ``folder``."""
    if not folder.is_dir():
        raise AdapterLoadError(
            f"Adapter folder {folder} does not exist; pass the folder that save_adapter wrote (or a hub id)."
        )
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise AdapterLoadError(
            f"{folder} has no {CONFIG_FILE}; it is not an adapter saved by mm_adapters.save_adapter."
        )
    document = read_json_object(config_path, "adapter")
    unknown = sorted(set(document) - _CONFIG_KEYS)
    missing = sorted({"format", "name", "config", "backbone"} - set(document))
    if document.get("format") == FORMAT and "positions" not in document:
        missing.append("positions")
    if document.get("format") in UNPOSITIONED_FORMATS and "positions" in document:
        unknown.append("positions")
    if unknown or missing:
        raise AdapterLoadError(f"{config_path}: unknown keys {unknown}, missing keys {missing}.")
    if document["format"] != FORMAT and document["format"] not in UNPOSITIONED_FORMATS:
        raise AdapterLoadError(
            f"{config_path}: format {document['format']!r} is not {FORMAT!r} (or an older "
            f"{list(UNPOSITIONED_FORMATS)}); it was written by a newer mm_adapters, upgrade to load it."
        )
    if not isinstance(document["config"], dict):
        raise AdapterLoadError(f"{config_path}: 'config' must be a JSON object.")
    try:
        config_from_document(document)
    except ValueError as error:
        raise AdapterLoadError(f"{config_path}: {error}") from error
    return document


def config_from_document(document: dict) -> AdapterConfig:
    """The config of a saved adapter; a format-1 config gets the placement that format implied."""
    data = dict(document["config"])
    legacy = LEGACY_FORMATS.get(document["format"])
    if legacy is not None:
        for key in ("reads", "init"):
            if key in data:
                raise ValueError(
                    f"key {key!r} did not exist in format {document['format']!r}; the file was edited."
                )
        data["reads"] = legacy.get(data.get("mode", "sequential"), "output")
    return AdapterConfig.from_dict(data)


def is_mm_adapter_folder(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


register_format(
    FileFormat(
        name="mm_adapters",
        kind="adapter",
        detect=is_mm_adapter_folder,
        load=load_mm_adapter,
        save=save_mm_adapter,
        files=(CONFIG_FILE, WEIGHTS_FILE, HEAD_FILE, HEAD_CONFIG_FILE, LABELS_FILE, TASK_FILE),
        fallback=True,
    )
)
