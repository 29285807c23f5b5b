"""LoRA (peft) on a backbone's attention projections, the low-rank baseline next to bottleneck adapters.

The attention modules come from the backbone's spec (the module of each block's ``attn`` site): every ``nn.Linear``
inside it (query, key, value and output projections, or a fused ``qkv``) and every ``nn.MultiheadAttention`` (open_clip),
so LoRA finds them in any family the adapters support. peft injects in place: the model stays the same object.
"""

from __future__ import annotations

import copy

from torch import nn

from .specs import detect_spec, tower_blocks

LORA_ADAPTER = "default"
"""peft's adapter name: the one ``PeftModel.from_pretrained`` loads a saved folder as."""


def lora_targets(model: nn.Module) -> list[str]:
    """Full module names of the attention projections of every block of every tower of ``model``.

    Raises ValueError when the model has no spec or its attention modules hold no Linear layers."""
    spec = detect_spec(model)
    names = {id(module): name for name, module in model.named_modules()}
    targets: list[str] = []
    for tower in spec.towers.values():
        attention = tower.attn.output.split(".")[0]
        for block in tower_blocks(model, tower):
            container = getattr(block, attention, None)
            if container is None:
                continue
            inside_mha: set[int] = set()
            for module in container.modules():
                if isinstance(module, nn.MultiheadAttention):
                    inside_mha.update(id(child) for child in module.modules() if child is not module)
            for module in container.modules():
                wanted = isinstance(module, nn.MultiheadAttention) or isinstance(module, nn.Linear)
                if wanted and id(module) not in inside_mha and id(module) in names:
                    targets.append(names[id(module)])
    if not targets:
        raise ValueError(
            f"LoRA found no attention projections in {type(model).__name__} (family {spec.family}): its blocks' "
            "attention modules hold no nn.Linear or nn.MultiheadAttention. Use --method adapter, full or probe."
        )
    return list(dict.fromkeys(targets))


def lora_config(model: nn.Module, rank: int):
    """peft's ``LoraConfig`` of rank ``rank`` (alpha = 2 x rank) on :func:`lora_targets`."""
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"The LoRA rank must be at least 1, got {rank}.")
    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=lora_targets(model))


def add_lora(model: nn.Module, rank: int) -> nn.Module:
    """Inject LoRA of rank ``rank`` into ``model`` in place; only the LoRA weights stay trainable."""
    from peft import inject_adapter_in_model

    config = lora_config(model, rank)
    model.requires_grad_(False)
    inject_adapter_in_model(config, model, adapter_name=LORA_ADAPTER)
    return model


def lora_parameters_per_rank(model: nn.Module) -> int:
    """Trainable parameters LoRA adds per unit of rank (counted on a copy at rank 1)."""
    probe = add_lora(copy.deepcopy(model), 1)
    return sum(p.numel() for name, p in probe.named_parameters() if "lora_" in name)


def matched_lora_rank(model: nn.Module, budget: int) -> int:
    """The rank whose LoRA parameter count is closest to ``budget`` (at least 1)."""
    return max(1, round(budget / lora_parameters_per_rank(model)))
