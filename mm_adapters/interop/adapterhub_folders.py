"""Reading and writing adapter, fusion and head folders in AdapterHub's (``adapters`` 1.x) format.

Read: ``adapter_config.json`` + ``adapter.safetensors`` or ``pytorch_adapter.bin`` (the ``.bin`` only through
``torch.load(weights_only=True)``, which refuses pickled code); ``adapter_fusion_config.json`` +
``model_adapter_fusion.safetensors`` / ``pytorch_model_adapter_fusion.bin``; ``head_config.json`` +
``model_head.safetensors`` / ``pytorch_model_head.bin``. Written folders hold both: the safetensors, which we read, and
(unless ``pickled_copy=False``) the ``.bin`` AdapterHub reads with its defaults (``model.load_adapter(folder)``): plain
tensors written by ``torch.save``, read back by us only when a folder has no safetensors, and then only as tensors.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..composition.fusion_io import install_fusion
from ..errors import AdapterLoadError
from ..injection import add_adapter, delete_adapter, set_active_adapters
from ..io import backbone_signature, read_json_object, write_directory_atomically
from ..serialization import adapter_state_dict, copy_checked, site_tensors
from ..state import check_name, get_state, tower_layers
from . import adapterhub_config as ah_config
from . import adapterhub_keys as ah_keys

CONFIG_FILE = "adapter_config.json"
WEIGHTS = ("adapter.safetensors", "pytorch_adapter.bin")
FUSION_CONFIG_FILE = "adapter_fusion_config.json"
FUSION_WEIGHTS = ("model_adapter_fusion.safetensors", "pytorch_model_adapter_fusion.bin")
HEAD_CONFIG_FILE = "head_config.json"
HEAD_WEIGHTS = ("model_head.safetensors", "pytorch_model_head.bin")
VERSION = "adapters.1.3.0"


def is_adapterhub_folder(folder: Path) -> bool:
    """An AdapterHub adapter folder: its config and one of its weight files, and none of ours."""
    return (
        (folder / CONFIG_FILE).is_file()
        and any((folder / w).is_file() for w in WEIGHTS)
        and not (folder / "adapter_model.safetensors").is_file()
    )


def is_adapterhub_fusion_folder(folder: Path) -> bool:
    return (folder / FUSION_CONFIG_FILE).is_file() and any((folder / w).is_file() for w in FUSION_WEIGHTS)


def read_weights(folder: Path, names: tuple[str, str]) -> tuple[dict[str, torch.Tensor], Path]:
    """The tensors of the first weights file present: safetensors, else a ``.bin`` read with ``weights_only``."""
    safe, pickled = (folder / n for n in names)
    path = safe if safe.is_file() else pickled
    if not path.is_file():
        raise AdapterLoadError(f"{folder} has neither {names[0]} nor {names[1]}; the folder is incomplete.")
    try:
        if path == safe:
            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, ValueError, EOFError) as error:
        raise AdapterLoadError(
            f"{path} is not a readable weights file ({error}); a .bin is only read as plain tensors "
            "(torch.load(weights_only=True)), never as arbitrary pickled objects."
        ) from error
    except Exception as error:  # torch.load's UnpicklingError for anything that is not plain tensors
        raise AdapterLoadError(
            f"{path} holds more than plain tensors, refusing to unpickle it: {error}"
        ) from error
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise AdapterLoadError(f"{path} must hold a mapping of names to tensors.")
    return tensors, path


def _layer_counts(model: nn.Module, family: str) -> dict[str, int]:
    """Layers per tower in AdapterHub's numbering order (CLIP: text first, then vision)."""
    layers = tower_layers(model, get_state(model, create=True).spec)
    return {tower: len(layers[tower]) for tower in ah_keys.layout(family)}


def _hidden_sizes(model: nn.Module) -> set[int]:
    state = get_state(model, create=True)
    return {t["hidden_size"] for t in backbone_signature(model, state.spec)["towers"].values()}


def load_adapterhub_adapter(
    model: nn.Module,
    directory: str | os.PathLike,
    name: str | None = None,
    *,
    set_active: bool = True,
) -> str:
    """Load an AdapterHub bottleneck adapter folder into ``model``, with AdapterHub's outputs; return its name.

    Everything is checked (config fields, tensor names and shapes) before the model changes."""
    folder = Path(directory)
    config_path = folder / CONFIG_FILE
    document = read_json_object(config_path, "adapter")
    hub_name = document.get("name")
    if not isinstance(hub_name, str):
        raise AdapterLoadError(f"{config_path}: AdapterHub config has no 'name'.")
    if name is None and not _valid_name(hub_name):
        raise AdapterLoadError(
            f"{config_path}: the AdapterHub name {hub_name!r} is not a valid mm_adapters name (letters, digits, '_' "
            "or '-'); pass name=... to load_adapter."
        )
    name = check_name(name if name is not None else hub_name)
    family = get_state(model, create=True).spec.family
    counts = _layer_counts(model, family)
    hidden = document.get("hidden_size")
    if hidden is not None and hidden not in _hidden_sizes(model):
        raise AdapterLoadError(
            f"{config_path}: the adapter was trained for hidden size {hidden}, this model has {sorted(_hidden_sizes(model))}."
        )
    config = ah_config.from_adapterhub(
        _without_unused_invertible(document),
        counts,
        str(config_path),
        legacy_activation="version" not in document,
    )
    tensors, weights_path = read_weights(folder, WEIGHTS)
    _refuse_invertible_weights(tensors, weights_path)
    mapping, unknown = ah_keys.from_adapterhub(family, list(tensors))
    others = sorted({k for k in mapping if f".adapters.{hub_name}." not in ah_keys.renamed(k)})
    if others:
        raise AdapterLoadError(
            f"{weights_path}: holds tensors of other adapters than {hub_name!r}, e.g. {others[:2]}."
        )
    if unknown:
        raise AdapterLoadError(
            f"{weights_path}: {len(unknown)} tensors fit no bottleneck adapter place of a {family} model, e.g. "
            f"{unknown[:3]}; the folder is for another model type or holds modules mm_adapters does not have."
        )
    ours = {mapping[k]: v for k, v in tensors.items()}
    state = get_state(model, create=True)
    if name in state.configs:
        raise ValueError(
            f"An adapter named {name!r} already exists; delete_adapter it first or pass name=...."
        )
    previously_active = state.setup
    add_adapter(model, name, config, set_active=False)
    try:
        copy_checked(site_tensors(model, name), ours, weights_path, "does not match its adapter_config.json")
    except Exception:
        delete_adapter(model, name)
        raise
    set_active_adapters(model, name if set_active else previously_active)
    return name


def _valid_name(name: str) -> bool:
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def _refuse_invertible_weights(tensors: dict, path: Path) -> None:
    invertible = [k for k in tensors if "invertible" in k]
    if invertible:
        raise AdapterLoadError(
            f"{path}: holds invertible adapter weights ({invertible[:2]}); invertible adapters (inv_adapter) are "
            "not supported."
        )


def _without_unused_invertible(document: dict) -> object:
    """adapter-transformers text task adapters name invertible adapters in their config without having their weights;
    AdapterHub drops them on load (``_fix_legacy_config``), so do we. With weights they are refused."""
    config = document.get("config")
    if document.get("type") != "text_task" or not isinstance(config, dict):
        return config
    return {
        k: v
        for k, v in config.items()
        if k not in ("inv_adapter", "inv_adapter_reduction_factor", "invertible_adapter")
    }


def save_adapterhub_adapter(
    model: nn.Module,
    name: str,
    directory: str | os.PathLike,
    *,
    overwrite: bool = False,
    pickled_copy: bool = True,
) -> Path:
    """Write adapter ``name`` as an AdapterHub folder (``adapter_config.json`` + ``adapter.safetensors`` and, unless
    ``pickled_copy=False``, the ``pytorch_adapter.bin`` AdapterHub's ``load_adapter(folder)`` reads by default)."""
    state = get_state(model)
    if name not in state.configs:
        raise ValueError(f"No adapter named {name!r} on this model; it has {sorted(state.configs)}.")
    if name in state.shared:
        raise ValueError(f"Adapter {name!r} shares tensors across towers; AdapterHub has no such adapter.")
    family = state.spec.family
    config = ah_config.to_adapterhub(state.configs[name], _layer_counts(model, family))
    tensors = {ah_keys.to_adapterhub(family, k, name): v for k, v in adapter_state_dict(model, name).items()}
    document = _document(model, name, config)
    return _write(directory, tensors, document, CONFIG_FILE, WEIGHTS, overwrite, pickled_copy)


def _document(model: nn.Module, name: str, config: dict) -> dict:
    model_config = getattr(model, "config", None)
    return {
        "config": config,
        "hidden_size": getattr(model_config, "hidden_size", None),
        "model_class": type(model).__name__,
        "model_name": "",
        "model_type": getattr(model_config, "model_type", None),
        "name": name,
        "version": VERSION,
    }


def _write(
    directory, tensors: dict, document: dict, config_file: str, weights: tuple[str, str], overwrite: bool,
    pickled_copy: bool,
) -> Path:  # fmt: skip
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    def fill(folder: Path) -> None:
        save_file(tensors, str(folder / weights[0]))
        if pickled_copy:  # a plain dict of tensors, each its own storage: what weights_only loading accepts
            torch.save({k: v.clone() for k, v in tensors.items()}, folder / weights[1])
        (folder / config_file).write_text(json.dumps(document, indent=2, sort_keys=True))

    return write_directory_atomically(directory, fill, overwrite)


# -- fusion -------------------------------------------------------------------------------------------------------------
def load_adapterhub_fusion(
    model: nn.Module, directory: str | os.PathLike, name: str | None = None, *, set_active: bool = True
) -> str:
    """Load an AdapterHub fusion folder into a model that has the fused adapters (loaded under their AdapterHub
    names); returns the fusion's name (default: the adapter names joined by ``_``)."""
    folder = Path(directory)
    config_path = folder / FUSION_CONFIG_FILE
    document = read_json_object(config_path, "fusion")
    adapters = document.get("adapter_names")
    if not isinstance(adapters, list) or len(adapters) < 1 or not all(isinstance(a, str) for a in adapters):
        raise AdapterLoadError(f"{config_path}: 'adapter_names' must be a list of adapter names.")
    ah_config.check_fusion(document.get("config"), str(config_path))
    state = get_state(model, create=True)
    missing = [a for a in adapters if a not in state.configs]
    if missing:
        raise AdapterLoadError(
            f"The fusion in {folder} fuses {adapters}, but this model lacks {missing}; load those adapters first."
        )
    if any(state.configs[a].is_parallel for a in adapters):
        raise AdapterLoadError(
            f"{config_path}: fuses parallel adapters; AdapterHub adds the residual twice there, which mm_adapters "
            "does not reproduce."
        )
    hub_name = document.get("name") or ",".join(adapters)
    name = check_name(name if name is not None else "_".join(adapters))
    family = state.spec.family
    tensors, weights_path = read_weights(folder, FUSION_WEIGHTS)
    mapping, unknown = ah_keys.from_adapterhub(family, list(tensors), kind="fusions")
    if unknown:
        raise AdapterLoadError(
            f"{weights_path}: tensors fit no fusion place of a {family} model, e.g. {unknown[:3]}."
        )
    wrong = sorted({k.split(".adapter_fusion_layer.")[1].split(".")[0] for k in tensors} - {hub_name})
    if wrong:
        raise AdapterLoadError(f"{weights_path}: holds fusion layers {wrong}, expected {hub_name!r}.")
    ours = {mapping[k]: v for k, v in tensors.items()}
    return install_fusion(
        model, adapters, name, ours, weights_path, "does not fit the fused adapters", set_active
    )


def save_adapterhub_fusion(
    model: nn.Module,
    name: str,
    directory: str | os.PathLike,
    *,
    overwrite: bool = False,
    pickled_copy: bool = True,
) -> Path:
    """Write fusion ``name`` as an AdapterHub fusion folder (dynamic fusion config); save the fused adapters with
    ``save_adapter(..., format="adapterhub")`` too."""
    state = get_state(model)
    if name not in state.fusions:
        raise ValueError(f"No fusion named {name!r}; this model has {sorted(state.fusions)}.")
    adapters = list(state.fusions[name])
    hub_name = ",".join(adapters)
    family = state.spec.family
    tensors = {
        ah_keys.to_adapterhub(family, k, hub_name, kind="fusions"): t.detach().cpu()
        for k, t in site_tensors(model, name, "fusions").items()
    }
    document = _document(model, hub_name, dict(ah_config.FUSION_DYNAMIC))
    document["adapter_names"] = adapters
    return _write(directory, tensors, document, FUSION_CONFIG_FILE, FUSION_WEIGHTS, overwrite, pickled_copy)


# -- heads --------------------------------------------------------------------------------------------------------------
def load_adapterhub_head(directory: str | os.PathLike) -> nn.Sequential:
    """AdapterHub's classification head from ``head_config.json`` + its weights, as an ``nn.Sequential`` with the
    same module indices (dropout, linear, activation, ..., linear). It reads what AdapterHub's head reads: the
    first token's hidden state (``use_pooler=False``) or the pooler output (``use_pooler=True``)."""
    from transformers.activations import get_activation

    folder = Path(directory)
    path = folder / HEAD_CONFIG_FILE
    document = read_json_object(path, "head")
    config = document.get("config")
    if not isinstance(config, dict) or config.get("head_type") != "classification":
        kind = config.get("head_type") if isinstance(config, dict) else None
        raise AdapterLoadError(
            f"{path}: head_type {kind!r}; only AdapterHub classification heads are supported."
        )
    hidden, labels, depth = document.get("hidden_size"), config.get("num_labels"), config.get("layers")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, labels, depth)):
        raise AdapterLoadError(
            f"{path}: needs positive integer hidden_size, config.num_labels and config.layers."
        )
    modules: list[nn.Module] = []
    for index in range(depth):
        modules.append(nn.Dropout(config.get("dropout_prob") or 0.0))
        if index < depth - 1:
            modules.append(nn.Linear(hidden, hidden))
            if config.get("activation_function"):
                modules.append(get_activation(config["activation_function"]))
        else:
            modules.append(nn.Linear(hidden, labels, bias=config.get("bias", True)))
    head = nn.Sequential(*modules)
    tensors, weights_path = read_weights(folder, HEAD_WEIGHTS)
    name = document.get("name")
    prefix = f"heads.{name}."
    stripped = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if len(stripped) != len(tensors):
        raise AdapterLoadError(
            f"{weights_path}: expected only keys under {prefix!r}, got {sorted(tensors)[:3]}."
        )
    try:
        head.load_state_dict(stripped)
    except RuntimeError as error:
        raise AdapterLoadError(f"{weights_path} does not fit {path}: {error}") from error
    return head.eval()
