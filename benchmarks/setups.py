"""The training set-ups compared: full fine-tuning, mm_adapters, AdapterHub ``adapters`` and peft LoRA.

Each set-up owns a copy of the same random-weight backbone, its own classification head and an AdamW optimizer
over what it trains (for full fine-tuning: everything, as users do).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from models import NUM_CLASSES, BenchModel
from torch import nn

import mm_adapters
from mm_adapters.specs import resolve_path
from mm_adapters.speed import PrefixCache, cast_frozen, wrap_frozen_prefix

METHODS = ("pfeiffer", "houlsby", "parallel", "top-half", "top-half+cache")


@dataclass
class Setup:
    label: str
    library: str
    """"full", "mm_adapters", "adapters" or "peft"."""
    method: str
    """"full", one of METHODS, or "lora"."""
    model: nn.Module
    head: nn.Module | None
    optimizer: torch.optim.Optimizer
    cache: PrefixCache | None = None
    runner: nn.Module | None = None
    """The module called in forward: ``model`` or its ``torch.compile`` wrapper."""
    extra: dict = field(default_factory=dict)

    def batch_context(self, inputs: dict) -> contextlib.AbstractContextManager:
        return self.cache.batch(inputs["index"]) if self.cache is not None else contextlib.nullcontext()

    def trainable(self) -> int:
        params = list(self.model.parameters()) + (
            list(self.head.parameters()) if self.head is not None else []
        )
        return sum(p.numel() for p in params if p.requires_grad)


def _head(bench: BenchModel, device: torch.device) -> nn.Module | None:
    if bench.hidden_size is None:
        return None
    torch.manual_seed(1)
    return nn.Linear(bench.hidden_size, NUM_CLASSES).to(device)


def _finish(label, library, method, bench, model, device, low_precision, cache=None) -> Setup:
    head = _head(bench, device)
    model.to(device)
    if low_precision is not None and library != "full":
        cast_frozen(model, low_precision)  # frozen base in bf16, trainable weights stay fp32 (master weights)
    params = [p for p in model.parameters() if p.requires_grad]
    if head is not None:
        params += list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    return Setup(label, library, method, model, head, optimizer, cache=cache, runner=model)


def full_finetuning(bench: BenchModel, base: nn.Module, device, low_precision=None) -> Setup:
    model = copy.deepcopy(base)
    model.requires_grad_(True)
    return _finish("full fine-tuning", "full", "full", bench, model, device, low_precision)


def _num_layers(model: nn.Module) -> int:
    spec = mm_adapters.detect_spec(model)
    return max(len(resolve_path(model, tower.layers)) for tower in spec.towers.values())


def ours(bench: BenchModel, base: nn.Module, method: str, device, low_precision=None) -> Setup:
    model = copy.deepcopy(base)
    preset = "pfeiffer" if method.startswith("top-half") else method
    layers = f"last:{_num_layers(base) // 2}" if method.startswith("top-half") else "all"
    mm_adapters.add_adapter(model, "bench", mm_adapters.AdapterConfig.preset(preset, layers=layers))
    cache = None
    if method == "top-half+cache":
        cache = PrefixCache(max_bytes=16 * 2**30, device=device).attach(model)
    elif method == "top-half":
        wrap_frozen_prefix(model)  # the layers below the adapters run in eval mode without autograd
    return _finish(f"mm_adapters {method}", "mm_adapters", method, bench, model, device, low_precision, cache)


def adapterhub(bench: BenchModel, base: nn.Module, method: str, device, low_precision=None) -> Setup | None:
    if not bench.adapterhub or method == "top-half+cache":
        return None
    import adapters  # the peer library; only in the benchmark environment

    model = copy.deepcopy(base)
    adapters.init(model)
    num_layers = _num_layers(base)
    configs = {
        "pfeiffer": lambda: adapters.SeqBnConfig(reduction_factor=16),
        "houlsby": lambda: adapters.DoubleSeqBnConfig(reduction_factor=16),
        "parallel": lambda: adapters.ParBnConfig(reduction_factor=2, scaling=4.0),
        "top-half": lambda: adapters.SeqBnConfig(reduction_factor=16, leave_out=list(range(num_layers // 2))),
    }
    model.add_adapter("bench", config=configs[method]())
    model.train_adapter("bench")
    return _finish(f"AdapterHub {method}", "adapters", method, bench, model, device, low_precision)


def lora(bench: BenchModel, base: nn.Module, device, low_precision=None) -> Setup:
    import peft

    model = copy.deepcopy(base)
    config = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(bench.lora_targets))
    peft.get_peft_model(model, config)  # injects LoRA layers into ``model`` in place
    return _finish("peft LoRA r=8", "peft", "lora", bench, model, device, low_precision)


def all_setups(
    bench: BenchModel, base: nn.Module, device, methods=METHODS, low_precision=None, peers: bool = True
) -> list[Setup]:
    """Full fine-tuning first (the reference), then ours, AdapterHub and LoRA."""
    setups = [full_finetuning(bench, base, device, low_precision)]
    setups += [ours(bench, base, m, device, low_precision) for m in methods]
    if peers:
        setups += [
            s for s in (adapterhub(bench, base, m, device, low_precision) for m in methods) if s is not None
        ]
        setups.append(lora(bench, base, device, low_precision))
    return setups


def compile_setups(setups: list[Setup], compile_fn: Callable[[nn.Module], nn.Module] = torch.compile) -> None:
    for setup in setups:
        setup.runner = compile_fn(setup.model)
