"""An automatic spec for a model no family covers, found by tracing one forward on a tiny input.

0. The input (``inputs.py``): ``example_inputs`` when given, else built from the model's forward signature and
   config (every required input, the main one, one per modality of a dual encoder, decoder inputs of an
   encoder-decoder), a timm data config, or a plain module's first input layer.
1. Every ``nn.ModuleList`` / ``nn.Sequential`` of blocks of one class is a candidate block list; so is a list of
   ``[attn, ff]`` groups whose residuals the parent's loop adds.
2. One forward runs under a ``TorchFunctionMode`` that records which tensors each op made from which, with forward
   hooks naming the modules that produced them. In the first block of a list, a *residual add* adds two tensors of
   the block's hidden shape; walking back from each operand to the nearest module output (of a module holding a
   ``Linear`` or transformers' ``Conv1D``) gives the sublayer that feeds it (``sites.py``; both sublayers of a
   parallel-residual block). A sublayer whose forward ran softmax or scaled-dot-product attention is the attention;
   the last other one is the FFN; an attention between them is a decoder's cross-attention; a block holding several
   attention / FFN pairs gives one tower per pair. A module a fused kernel bypasses (``nn.MultiheadAttention.out_proj``)
   never runs as a module, so it is never found.
3. LayerNorms are read from the same trace: one whose output is the sublayer's input makes the block pre-LN, one
   that takes the residual add's output makes it post-LN; an FFN that reads the stream itself (no LayerNorm before
   it) makes it res-post-norm, with the LayerNorm that takes each sublayer's output, if any, as that site's norm.
4. The candidate spec is checked on a copy of the model with probe adapters (zero-initialised bottlenecks wrapping
   the sites, never hooks: hooks switch fused paths off) in eval under no_grad: output unchanged, every site
   called, output changed once the probes are non-zero, every probe parameter gets a gradient, all outputs of the
   forward compared. Lists that pass are the towers; lists left out are named in the spec's notes (``notes.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch import nn

from ..base import BackboneSpec, tower_blocks
from .inputs import NoAutoSpec, NoExampleInput, example_run
from .towers import find_towers, find_towers_and_notes
from .trace import trace_forward
from .verify import verify

__all__ = [
    "NoAutoSpec",
    "NoExampleInput",
    "auto_spec",
    "example_run",
    "find_towers",
    "trace_forward",
    "verify",
]

logger = logging.getLogger("mm_adapters")


def auto_spec(
    model: nn.Module, run: Callable[[nn.Module], object] | None = None, example_inputs=None
) -> BackboneSpec:
    """A spec for ``model`` found by tracing ``run(model)`` (default: ``example_inputs`` when given, else a tiny
    batch built from its forward signature and config), checked with probe adapters; raises ValueError with what it
    found when no block list passes."""
    run = run or example_run(model, example_inputs)
    was_training = model.training
    model.eval()
    try:
        towers, notes = find_towers_and_notes(model, run)
        problem = (
            verify(model, towers, run) if towers else "no block list with an attention and an FFN sublayer"
        )
    finally:
        model.train(was_training)
    if problem:
        found = ", ".join(f"{t.layers}: attn={t.attn.output}, ffn={t.ffn.output}" for t in towers.values())
        raise NoAutoSpec(f"The automatic spec found {found or 'nothing'}, but {problem}.")
    spec = BackboneSpec(
        family=f"auto:{type(model).__name__}", class_names=(type(model).__name__,), towers=towers,
        notes=tuple(f"{type(model).__name__} (automatic spec): {note}" for note in notes),
    )  # fmt: skip
    logger.warning(
        "mm_adapters: automatic spec for %s: %s",
        type(model).__name__,
        "; ".join(
            f"{name}={t.layers}{'[' + ','.join(t.block_types) + ']' if t.block_types else ''} "
            f"({len(tower_blocks(model, t))} blocks, attn={t.attn.output}, ffn={t.ffn.output}, "
            f"{'cross_attn=' + t.cross_attn.output + ', ' if t.cross_attn else ''}"
            f"norm={t.norm_position}{', NCHW' if t.channels_first else ''})"
            for name, t in towers.items()
        ),
    )
    for note in spec.notes:
        logger.warning("mm_adapters: %s", note)
    return spec
