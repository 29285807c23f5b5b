"""An automatic spec for a model no family covers, found by tracing one forward on a tiny input.

1. Every ``nn.ModuleList`` / ``nn.Sequential`` of blocks of one class is a candidate block list.
2. One forward runs under a ``TorchFunctionMode`` that records which tensors each op made from which, with forward
   hooks naming the modules that produced them. In the first block of a list, a *residual add* adds two tensors of
   the block's hidden shape; walking back from each operand to the nearest module output (of a module holding a
   ``Linear``) gives the sublayer that feeds it. A sublayer whose forward ran softmax or scaled-dot-product
   attention is the attention; the last other one is the FFN. A module a fused kernel bypasses
   (``nn.MultiheadAttention.out_proj``) never runs as a module, so it is never found.
3. LayerNorms are read from the same trace: one whose output is the sublayer's input makes the block pre-LN, one
   that takes the residual add's output makes it post-LN; an FFN that reads the stream itself (no LayerNorm before
   it) makes it res-post-norm, with the LayerNorm that takes each sublayer's output, if any, as that site's norm.
4. The candidate spec is checked on a copy of the model with probe adapters (zero-initialised bottlenecks) on its
   sites: output unchanged, every site called, every probe parameter gets a gradient. Lists that pass are the towers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from ..base import BackboneSpec, tower_blocks
from .towers import find_towers
from .trace import trace_forward
from .verify import verify

__all__ = ["NoAutoSpec", "auto_spec", "example_run", "find_towers", "trace_forward", "verify"]

logger = logging.getLogger("mm_adapters")


class NoAutoSpec(ValueError):
    """The automatic spec found no block list that passes its checks (the message says what it found)."""


def example_run(model: nn.Module) -> Callable[[nn.Module], object]:
    """A forward on a tiny batch built from the model's own config (Hugging Face) or data config (timm)."""
    config = getattr(model, "config", None)
    name = getattr(model, "main_input_name", None)
    generator = torch.Generator().manual_seed(0)
    if config is not None and name == "input_ids":
        ids = torch.randint(
            0, min(int(getattr(config, "vocab_size", 100) or 100), 100), (2, 8), generator=generator
        )
        return lambda m: m(input_ids=ids)
    if config is not None and name == "pixel_values" and hasattr(config, "image_size"):
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        images = torch.randn(2, getattr(config, "num_channels", 3), size, size, generator=generator)
        return lambda m: m(pixel_values=images)
    if config is not None and name == "input_values":
        audio = torch.randn(2, 16_000, generator=generator)
        return lambda m: m(input_values=audio)
    data_config = getattr(model, "pretrained_cfg", None)
    if isinstance(data_config, dict) and "input_size" in data_config:
        channels, *size = data_config["input_size"]
        for side in (64, None):  # 64 px where the model takes any size (SAM2's Hiera would trace at 1024)
            images = torch.randn(2, channels, *([side, side] if side else size), generator=generator)

            def run(m, images=images):
                return m.forward_features(images) if hasattr(m, "forward_features") else m(images)

            if side is None:
                return run
            try:
                with torch.no_grad():
                    run(model)
                return run
            except Exception:  # noqa: BLE001  (a fixed input size: use it)
                continue
    raise NoAutoSpec(
        "The automatic spec needs one forward on a tiny input, and mm_adapters cannot tell this model's input: "
        "call mm_adapters.specs.auto_spec(model, run=lambda m: m(example_input)) and pass its result as spec=."
    )


def auto_spec(model: nn.Module, run: Callable[[nn.Module], object] | None = None) -> BackboneSpec:
    """A spec for ``model`` found by tracing ``run(model)`` (default: a tiny batch from its config), checked with
    probe adapters; raises ValueError with what it found when no block list passes."""
    run = run or example_run(model)
    was_training = model.training
    model.eval()
    try:
        towers = find_towers(model, run)
        problem = (
            verify(model, towers, run) if towers else "no block list with an attention and an FFN sublayer"
        )
    finally:
        model.train(was_training)
    if problem:
        found = ", ".join(f"{t.layers}: attn={t.attn.output}, ffn={t.ffn.output}" for t in towers.values())
        raise NoAutoSpec(f"The automatic spec found {found or 'nothing'}, but {problem}.")
    spec = BackboneSpec(
        family=f"auto:{type(model).__name__}", class_names=(type(model).__name__,), towers=towers
    )
    logger.warning(
        "mm_adapters: automatic spec for %s: %s",
        type(model).__name__,
        "; ".join(
            f"{name}={t.layers}{'[' + ','.join(t.block_types) + ']' if t.block_types else ''} "
            f"({len(tower_blocks(model, t))} blocks, attn={t.attn.output}, ffn={t.ffn.output}, "
            f"norm={t.norm_position}{', NCHW' if t.channels_first else ''})"
            for name, t in towers.items()
        ),
    )
    return spec
