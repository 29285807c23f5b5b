"""The files of an adapter folder: their names, and reading and writing them with clear errors.

Weights are safetensors; a config is a small JSON object. Every reader says which file is wrong and what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import AdapterLoadError
from .atomic import write_directory_atomically

ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
FUSION_CONFIG_FILE = "fusion_config.json"
FUSION_WEIGHTS_FILE = "fusion_model.safetensors"
HEAD_FILE = "head.safetensors"
HEAD_CONFIG_FILE = "head_config.json"
LABELS_FILE = "labels.json"
TASK_FILE = "task.json"
MODEL_CARD_FILE = "README.md"
ONNX_MANIFEST_FILE = "onnx_export.json"
MAX_CONFIG_BYTES = 1_000_000


def check_config_size(path: Path) -> None:
    """Refuse to parse a config file far larger than any config this library writes (a few KB)."""
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise AdapterLoadError(
            f"{path} is {size:,} bytes; configs written by mm_adapters are a few KB, so it is not one. Refusing to "
            "parse it; use a folder saved by mm_adapters."
        )


def read_json_object(path: Path, kind: str) -> dict:
    """Parse a config JSON (size-checked, must be an object); ``kind`` names what it belongs to in the error."""
    if not path.is_file():
        raise AdapterLoadError(f"{path} is missing; the {kind} folder is incomplete.")
    check_config_size(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise AdapterLoadError(
            f"{path} is not valid JSON ({error}); the file is corrupt, save the {kind} again."
        ) from error
    if not isinstance(document, dict):
        raise AdapterLoadError(f"{path} must hold a JSON object.")
    return document


def write_json(path: Path, document: dict) -> None:
    """Write ``document`` as indented UTF-8 JSON (names stay readable, not escaped)."""
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or an :class:`AdapterLoadError` saying it is missing or corrupt."""
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


def cpu_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict, detached, on the CPU and contiguous (what safetensors writes)."""
    return {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}


def without_shared_memory(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (a parameter held by two towers' adapters): copy repeats."""
    seen: set[int] = set()
    unique = {}
    for key, tensor in tensors.items():
        pointer = tensor.data_ptr()
        unique[key] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return unique


def save_head(head: nn.Module, folder: Path) -> None:
    save_file(cpu_tensors(head), str(folder / HEAD_FILE))


def load_head(head: nn.Module, folder: Path) -> None:
    """Load ``head.safetensors`` of ``folder`` into ``head``, checking names and shapes."""
    path = folder / HEAD_FILE
    if not path.is_file():
        raise AdapterLoadError(f"{folder} has no {HEAD_FILE}; it was saved without a head.")
    try:
        head.load_state_dict(read_tensors(path))
    except RuntimeError as error:
        raise AdapterLoadError(f"{path} does not fit the given head: {error}") from error


def write_weights_folder(
    directory: str | os.PathLike,
    tensors: dict[str, torch.Tensor],
    document: dict,
    head: nn.Module | None,
    overwrite: bool,
    *,
    config_file: str,
    weights_file: str,
) -> Path:
    """Atomically write ``tensors`` (safetensors), an optional ``head`` and the JSON ``document`` to ``directory``."""

    def fill(folder: Path) -> None:
        metadata = {"format": document["format"], "name": document["name"]}
        save_file(tensors, str(folder / weights_file), metadata=metadata)
        if head is not None:
            save_head(head, folder)
        (folder / config_file).write_text(json.dumps(document, indent=2))

    return write_directory_atomically(directory, fill, overwrite)
