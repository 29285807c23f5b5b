"""Saving and loading single adapters: a JSON config and a safetensors file, never the backbone, never pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import write_directory_atomically
from .config import AdapterConfig
from .errors import AdapterLoadError
from .injection import add_adapter, delete_adapter, set_active_adapters
from .plugins import shared_adapter_builder
from .specs.registry import current_family_name
from .state import backbone_signature, check_name, get_state, iter_sites

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
HEAD_FILE = "head.safetensors"
FORMAT = "mm_adapters.adapter/2"
# Format 1 (before placements were saved in the config): sequential adapters read the sublayer output, parallel ones
# the sublayer input, and up-projections started at zero. Those folders load with exactly that math.
LEGACY_FORMATS = {"mm_adapters.adapter/1": {"sequential": "output", "parallel": "sublayer_input"}}
_CONFIG_KEYS = {"format", "name", "config", "backbone", "has_head", "share"}
MAX_CONFIG_BYTES = 1_000_000


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
) -> Path:
    """Write adapter ``name`` (and optionally a task head) to ``directory``; atomic, and refuses to overwrite
    an existing folder unless ``overwrite=True``. ``format="adapterhub"`` writes an AdapterHub 1.x folder instead
    (no head; AdapterHub reads it with ``load_adapter(folder, use_safetensors=True)``)."""
    if format not in ("mm_adapters", "adapterhub"):
        raise ValueError(f"format must be 'mm_adapters' or 'adapterhub', got {format!r}.")
    if format == "adapterhub":
        if head is not None:
            raise ValueError(
                "format='adapterhub' writes the adapter only; save the head with format='mm_adapters'."
            )
        # imported here, not at the top: the interop package builds on this module
        from .interop import save_adapterhub_adapter

        return save_adapterhub_adapter(model, name, directory, overwrite=overwrite)
    state = get_state(model)
    if name not in state.configs:
        raise ValueError(f"No adapter named {name!r} on this model; it has {sorted(state.configs)}.")
    tensors = _without_shared_memory(adapter_state_dict(model, name))
    document = {
        "format": FORMAT,
        "name": name,
        "config": state.configs[name].to_dict(),
        "backbone": backbone_signature(model, state.spec),
        "has_head": head is not None,
    }
    if name in state.shared:  # cross-modal adapter: both towers' adapters hold the shared tensors
        document["share"] = state.shared[name]

    return write_weights_folder(directory, tensors, document, head, overwrite)


def write_weights_folder(
    directory: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    document: dict,
    head: nn.Module | None,
    overwrite: bool,
    *,
    config_file: str = CONFIG_FILE,
    weights_file: str = WEIGHTS_FILE,
) -> Path:
    """Atomically write ``tensors`` (safetensors), an optional ``head`` and the JSON ``document`` to ``directory``."""

    def fill(folder: Path) -> None:
        save_file(
            tensors,
            str(folder / weights_file),
            metadata={"format": document["format"], "name": document["name"]},
        )
        if head is not None:
            head_tensors = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
            save_file(head_tensors, str(folder / HEAD_FILE))
        (folder / config_file).write_text(json.dumps(document, indent=2))

    return write_directory_atomically(directory, fill, overwrite)


def load_adapter(
    model: nn.Module,
    directory: str | os.PathLike,
    name: str | None = None,
    *,
    head: nn.Module | None = None,
    set_active: bool = True,
) -> str:
    """Load an adapter saved by :func:`save_adapter` (or an AdapterHub 1.x folder) into ``model``; return its name.

    The file is checked against the model (family, hidden size, layer count, tensor names and shapes) before
    anything is changed; a mismatch raises :class:`AdapterLoadError` saying what differs.
    """
    folder = Path(directory)
    from .interop import (  # the interop package builds on this module
        is_adapterhub_folder,
        load_adapterhub_adapter,
    )

    if folder.is_dir() and is_adapterhub_folder(folder):
        if head is not None:
            raise AdapterLoadError(
                f"{folder} is an AdapterHub folder; load its head with mm_adapters.interop.load_adapterhub_head."
            )
        return load_adapterhub_adapter(model, folder, name, set_active=set_active)
    document = read_adapter_config(folder)
    name = check_name(name if name is not None else document["name"])
    config = config_from_document(document)
    _check_signature(model, document["backbone"], folder)
    tensors = _read_tensors(folder / WEIGHTS_FILE)
    previously_active = get_state(model, create=True).setup
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
            _load_head(head, folder)
    except Exception:
        delete_adapter(model, name)
        raise
    if set_active:
        set_active_adapters(model, name)
    else:
        set_active_adapters(model, previously_active)
    return name


def read_json_object(path: Path, kind: str) -> dict:
    """Parse a config JSON written by mm_adapters (size-checked, must be an object); ``kind`` names what it
    belongs to in the error message."""
    check_config_size(path)
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise AdapterLoadError(
            f"{path} is not valid JSON ({error}); the file is corrupt, save the {kind} again."
        ) from error
    if not isinstance(document, dict):
        raise AdapterLoadError(f"{path} must hold a JSON object.")
    return document


def read_adapter_config(folder: Path) -> dict:
    """Parse and sanity-check ``adapter_config.json`` in ``folder``."""
    if not folder.is_dir():
        raise AdapterLoadError(
            f"Adapter folder {folder} does not exist; pass the folder that save_adapter wrote."
        )
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise AdapterLoadError(
            f"{folder} has no {CONFIG_FILE}; it is not an adapter saved by mm_adapters.save_adapter."
        )
    document = read_json_object(config_path, "adapter")
    unknown = sorted(set(document) - _CONFIG_KEYS)
    missing = sorted({"format", "name", "config", "backbone"} - set(document))
    if unknown or missing:
        raise AdapterLoadError(f"{config_path}: unknown keys {unknown}, missing keys {missing}.")
    if document["format"] != FORMAT and document["format"] not in LEGACY_FORMATS:
        raise AdapterLoadError(
            f"{config_path}: format {document['format']!r} is not {FORMAT!r} (or an older "
            f"{sorted(LEGACY_FORMATS)}); it was written by a newer mm_adapters, upgrade to load it."
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


def check_config_size(path: Path) -> None:
    """Refuse to parse a config file far larger than any config this library writes (a few KB)."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise AdapterLoadError(
            f"{path} is {size:,} bytes; configs written by mm_adapters are a few KB, so it is not one. Refusing to "
            "parse it; use a folder saved by mm_adapters."
        )


def _without_shared_memory(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (a parameter held by two towers' adapters): copy repeats."""
    seen: set[int] = set()
    unique = {}
    for key, tensor in tensors.items():
        pointer = tensor.data_ptr()
        unique[key] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return unique


def _check_signature(model: nn.Module, saved: dict, folder: Path) -> None:
    current = backbone_signature(model, get_state(model, create=True).spec)
    if isinstance(saved, dict) and isinstance(saved.get("family"), str):
        saved = {**saved, "family": current_family_name(saved["family"])}
    if saved != current:
        raise AdapterLoadError(
            f"The adapter in {folder} was trained for {_describe(saved)} but this model is {_describe(current)}; "
            "load it into the backbone it was trained on."
        )


def _describe(signature: object) -> str:
    if not isinstance(signature, dict) or not isinstance(signature.get("towers"), dict):
        return repr(signature)
    towers = ", ".join(
        f"{name}: hidden {info.get('hidden_size')}, {info.get('num_layers')} layers"
        if isinstance(info, dict)
        else name
        for name, info in signature["towers"].items()
    )
    return f"{signature.get('family')} ({towers})"


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise AdapterLoadError(
            f"{path} is missing; the adapter folder is incomplete, save the adapter again."
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise AdapterLoadError(
            f"{path} is not a readable safetensors file ({error}); it is truncated or corrupt."
        ) from error


def _load_head(head: nn.Module, folder: Path) -> None:
    path = folder / HEAD_FILE
    if not path.is_file():
        raise AdapterLoadError(f"{folder} has no {HEAD_FILE}; it was saved without a head.")
    try:
        head.load_state_dict(_read_tensors(path))
    except RuntimeError as error:
        raise AdapterLoadError(f"{path} does not fit the given head: {error}") from error
