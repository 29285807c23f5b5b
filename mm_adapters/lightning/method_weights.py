"""The backbone weights that an export of a baseline carries besides its head: the whole fine-tuned backbone
(``--method full``: ``backbone.safetensors``) or its LoRA weights (``--method lora``: ``lora/``, the folder peft's
``save_pretrained`` writes: ``adapter_config.json`` and ``adapter_model.safetensors``, so
``PeftModel.from_pretrained(hf_model, "<export>/lora")`` reads it too).

:func:`load_method_weights` puts them back into a freshly loaded backbone of the same kind;
:func:`~mm_adapters.lightning.load_for_inference` calls it first, so such an export reloads like any other.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ..lora import LORA_ADAPTER

BACKBONE_FILE = "backbone.safetensors"
LORA_DIR = "lora"
LORA_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
"""What ``PeftModel.save_pretrained`` puts before the module names (its wrapper's path to the base model)."""


def save_method_weights(model: nn.Module, directory: str | os.PathLike, method: str) -> Path | None:
    """Write the backbone weights ``method`` trained into ``directory``; None for methods whose weights the
    adapter/head export already holds (adapter, probe)."""
    folder = Path(directory)
    if method == "full":
        save_model(model, str(folder / BACKBONE_FILE))  # shared (tied) tensors stored once
        return folder / BACKBONE_FILE
    if method == "lora":
        from peft import get_peft_model_state_dict

        config = getattr(model, "peft_config", {}).get(LORA_ADAPTER)
        if config is None:
            raise ValueError("--method lora: the backbone has no LoRA to export (add_lora was not called).")
        target = folder / LORA_DIR
        target.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(str(target))
        state = get_peft_model_state_dict(model, adapter_name=LORA_ADAPTER)
        tensors = {PEFT_PREFIX + key: value.detach().cpu().contiguous() for key, value in state.items()}
        save_file(tensors, str(target / LORA_WEIGHTS), metadata={"format": "pt"})
        return target
    return None


def load_method_weights(model: nn.Module, directory: str | os.PathLike) -> str | None:
    """Load ``backbone.safetensors`` or ``lora/`` from an export into ``model`` (the backbone it was trained from);
    returns the method found (``full``, ``lora``) or None when the folder has neither."""
    folder = Path(directory)
    if (folder / BACKBONE_FILE).is_file():
        load_model(model, str(folder / BACKBONE_FILE))
        return "full"
    if (folder / LORA_DIR / LORA_WEIGHTS).is_file():
        from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict

        config = LoraConfig.from_pretrained(str(folder / LORA_DIR))
        if LORA_ADAPTER not in getattr(model, "peft_config", {}):
            inject_adapter_in_model(config, model, adapter_name=LORA_ADAPTER)
        saved = load_file(str(folder / LORA_DIR / LORA_WEIGHTS))
        state = {key.removeprefix(PEFT_PREFIX): value for key, value in saved.items()}
        result = set_peft_model_state_dict(model, state, adapter_name=LORA_ADAPTER)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise ValueError(f"{folder / LORA_DIR} does not fit this backbone: unexpected {unexpected[:5]}.")
        return "lora"
    return None
