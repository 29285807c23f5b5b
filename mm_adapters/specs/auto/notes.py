"""Never half-adapted: block lists the automatic spec leaves out, named with the reason (logged, and shown by
``mma.describe``). A list is named when its first block ran attention in the traced forward but no attention / FFN
pair was found on its residual chain, or when it never ran and looks like attention blocks (a class another tower
adapts, or a submodule named for attention)."""

from __future__ import annotations

import re

from torch import nn

from .trace import Trace

_ATTENTION_NAME = re.compile(r"attn|attention", re.IGNORECASE)


def unadapted_notes(
    trace: Trace, lists: list[tuple[str, list[nn.Module], tuple[str, ...]]], claimed: set[int]
) -> list[str]:
    """One note per block list that is neither a tower, inside a tower's blocks, nor a list of stages holding them."""
    claimed_blocks = [block for _, blocks, _ in lists for block in blocks if id(block) in claimed]
    inside = {id(module) for block in claimed_blocks for module in block.modules()}
    notes = []
    for path, blocks, block_types in lists:
        if any(id(module) in inside for block in blocks for module in block.modules()):
            continue
        reason = _reason(trace, blocks[0], {type(block) for block in claimed_blocks})
        if reason:
            kinds = "/".join(block_types) or type(blocks[0]).__name__
            notes.append(f"{path} ({len(blocks)} x {kinds}) is not adapted: {reason}")
    return notes


def _reason(trace: Trace, block: nn.Module, adapted_classes: set[type]) -> str | None:
    call = trace.calls.get(id(block))
    if call is None:
        named = any(_ATTENTION_NAME.search(name) for name, _ in block.named_modules())
        if named or type(block) in adapted_classes:
            return "it never ran in the traced forward (pass example_inputs= that reach it)"
        return None
    if any(call.start < step <= call.end for step in trace.attention_steps):
        return (
            "it runs attention, but the automatic spec found no attention and FFN sublayer on its residual chain "
            "(pass spec= to adapt it)"
        )
    return None
