"""Lightning strategies for many GPUs or nodes, set up for a frozen backbone with small trainable adapters.

* ``ddp``: every process holds the whole model; only the trainable tensors' gradients are all-reduced.
* ``ddp_find_unused``: DDP for setups where some adapters skip a step (AdapterDrop, BatchSplit).
* ``fsdp``: the backbone is sharded, one FSDP unit per transformer block (found from the backbone spec). A block
  holds frozen base weights and trainable adapters together, so FSDP needs ``use_orig_params=True`` to keep a
  per-tensor ``requires_grad`` inside its flat parameters (pytorch/pytorch#100945).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..specs import detect_spec, tower_blocks
from ..state import get_state, has_adapters

STRATEGIES = ("auto", "ddp", "ddp_find_unused", "fsdp")


def block_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The transformer block classes of every tower of ``model`` (the FSDP wrapping unit)."""
    spec = get_state(model).spec if has_adapters(model) else detect_spec(model)
    return {type(tower_blocks(model, tower)[0]) for tower in spec.towers.values()}


def make_strategy(name: str, model: nn.Module | None = None, **fsdp_options: Any) -> Any:
    """A Lightning ``strategy=`` value for ``name`` (one of :data:`STRATEGIES`); ``fsdp`` needs the raw backbone
    ``model`` to find its blocks; ``fsdp_options`` go to ``FSDPStrategy`` (e.g. ``sharding_strategy``)."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}.")
    if name == "ddp_find_unused":
        return "ddp_find_unused_parameters_true"
    if name != "fsdp":
        return name
    if model is None:
        raise ValueError("make_strategy('fsdp') needs the backbone model to find its transformer blocks.")
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    options = {
        "use_orig_params": True,
        "auto_wrap_policy": ModuleWrapPolicy(block_classes(model)),
        **fsdp_options,
    }
    if not options["use_orig_params"]:
        raise ValueError(
            "FSDP with frozen backbone weights and trainable adapters in one block needs use_orig_params=True "
            "(pytorch/pytorch#100945)."
        )
    return FSDPStrategy(**options)
