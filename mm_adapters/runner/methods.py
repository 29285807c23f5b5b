"""``--method``: what a recipe trains, so that every recipe runs its baselines on the same data, metrics, exports
and checkpoints as its adapters: ``adapter`` (bottleneck adapters and the head, backbone frozen), ``full`` (the
whole backbone and the head), ``probe`` (the head only) and ``lora`` (peft's LoRA on the attention projections and
the head, at the adapter's parameter count unless ``--lora-rank``)."""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any

from torch import nn

from .. import add_adapter, delete_adapter
from ..config import AdapterConfig
from ..lora import LORA_ADAPTER, add_lora, matched_lora_rank

METHODS = ("adapter", "full", "probe", "lora")
FULL_LR = 5e-5
"""The learning rate of ``--method full`` unless ``--lr`` is given: the whole backbone moves, so the adapters'
1e-3 would wreck its pretrained weights (BERT and ViT fine-tunes use 1e-5 to 5e-5)."""
FROZEN_PREFIX_METHODS = ("adapter", "probe")


def settle_method(config: Any, explicit: set[str]) -> Any:
    """The config with its method settled: ``--linear-probe`` is ``--method probe``; ``full`` gets
    :data:`FULL_LR` unless ``lr`` was given (``explicit``: fields set on the command line or in ``--config`` files).
    Raises ValueError for combinations that cannot run."""
    method = config.method
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if getattr(config, "linear_probe", False):
        if method not in ("adapter", "probe"):
            raise ValueError(f"--linear-probe is --method probe; drop one of it and --method {method}.")
        method = "probe"
    if config.lora_rank is not None and (method != "lora" or config.lora_rank < 1):
        raise ValueError(
            f"--lora-rank {config.lora_rank}: a LoRA rank is a whole number >= 1 and goes with --method lora."
        )
    if config.prefix_cache and method not in FROZEN_PREFIX_METHODS:
        raise ValueError(
            f"--prefix-cache reuses the outputs of frozen layers, but --method {method} trains every layer's "
            "weights; drop --prefix-cache."
        )
    if method == "lora" and importlib.util.find_spec("peft") is None:
        raise ValueError("--method lora uses peft: `pip install peft` (or mm_adapters[lora]).")
    changes: dict[str, Any] = {"method": method}
    if method == "full" and "lr" not in explicit:
        changes["lr"] = FULL_LR
    return dataclasses.replace(config, **changes)


def prepare_backbone(
    model: nn.Module, method: str, name: str, adapter_config: AdapterConfig, lora_rank: int | None = None
) -> str | None:
    """Make ``model`` train as ``method`` says: add adapter ``name`` (``adapter``), freeze it (``probe``),
    unfreeze it (``full``) or add LoRA (``lora``). Returns the adapter's name, None for the other methods."""
    if method == "adapter":
        add_adapter(model, name, adapter_config)
        return name
    if method == "probe":
        model.requires_grad_(False)
    elif method == "full":
        model.requires_grad_(True)
    elif method == "lora":
        add_lora(model, lora_rank or matched_lora_rank(model, adapter_parameter_count(model, adapter_config)))
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    return None


def adapter_parameter_count(model: nn.Module, adapter_config: AdapterConfig) -> int:
    """How many parameters the adapter of ``adapter_config`` would train on ``model`` (added, counted, removed)."""
    add_adapter(model, "_budget", adapter_config)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)  # add_adapter froze the rest
    delete_adapter(model, "_budget")
    return count


def lora_rank_of(model: nn.Module) -> int | None:
    """The rank of the LoRA in ``model`` (None without LoRA)."""
    config = getattr(model, "peft_config", {}).get(LORA_ADAPTER)
    return None if config is None else int(config.r)
