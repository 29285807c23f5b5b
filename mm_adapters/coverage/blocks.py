"""Transformer blocks found independently of the backbone spec, so the sweep can tell a model adapted in some blocks
and not others ("half-adapted") from one adapted everywhere.

A block is the innermost repeated module that holds an attention-like and an FFN-like sublayer. Attention-like: a
module whose class name says attention (``*Attention``, ``*Attn``, ``nn.MultiheadAttention``) or that has query/key/
value projections as children. FFN-like: a module whose class name says MLP / FFN / feed-forward / intermediate /
experts, or a child named like an FFN layer (``mlp``, ``ffn``, ``fc1``, ``linear1``, ``c_fc``, ``wi``, ...).
Repeated: its class occurs more than once in the model, or it sits in a ``ModuleList`` / ``Sequential``; not a
container, and not a module its parent holds as its attention or FFN sublayer (``attn``, ``mlp``, ...). None of this
reads the spec, the registered families or the automatic spec's trace."""

from __future__ import annotations

import re

from torch import nn

from ..site import AdapterSite

_ATTENTION_CLASS = re.compile(r"attention|attn|multihead", re.IGNORECASE)
_NOT_ATTENTION_CLASS = re.compile(
    r"pool|mask|rotary|embedding|bias|output$|channel|spatial|selectivekernel|cbam|eca|coord|excite|squeeze",
    re.IGNORECASE,
)  # and not channel or spatial attention: a gate over channels mixes no tokens (SK, CBAM, ECA, SE in CNNs)
_QKV_CHILDREN = (
    {"q", "k", "v"}, {"query", "key", "value"}, {"q_proj", "k_proj", "v_proj"}, {"qkv"},
    {"c_attn"}, {"query_key_value"}, {"Wqkv"}, {"wqkv"}, {"qkv_proj"},
)  # fmt: skip
_FFN_CLASS = re.compile(
    r"mlp|ffn|feedforward|feed_forward|intermediate|experts|moe|swiglu|geglu", re.IGNORECASE
)
_FFN_CHILD_NAMES = {
    "mlp", "ffn", "feed_forward", "feedforward", "ff", "intermediate", "fc1", "fc2", "linear1", "linear2", "c_fc",
    "wi", "wo", "w1", "w2", "mlp_channels", "channel_mlp", "dense_h_to_4h", "mlp_block", "ffn_layer",
}  # fmt: skip

_SUBLAYER_NAMES = {"attn", "attention", "self_attn", "self_attention", "token_mixer", "mixer", "mlp", "ffn"}
"""A module its parent holds as its attention or FFN sublayer is not a block, whatever it holds itself."""


def _is_attention(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return True
    name = type(module).__name__
    if _ATTENTION_CLASS.search(name) and not _NOT_ATTENTION_CLASS.search(name):
        return True
    children = {child for child, _ in module.named_children()}
    return any(names <= children for names in _QKV_CHILDREN)


def _is_ffn(name: str, module: nn.Module) -> bool:
    return bool(_FFN_CLASS.search(type(module).__name__)) or name.rsplit(".", 1)[-1] in _FFN_CHILD_NAMES


def _holds_both(module: nn.Module) -> bool:
    attention = ffn = False
    for name, child in module.named_modules():
        if child is module or isinstance(child, AdapterSite):
            continue
        attention = attention or _is_attention(child)
        ffn = ffn or _is_ffn(name, child)
        if attention and ffn:
            return True
    return False


def find_blocks(model: nn.Module) -> list[str]:
    """Module paths of the model's transformer blocks, outermost first (see the module docstring)."""
    containers = (nn.ModuleList, nn.Sequential, nn.ModuleDict)
    holding = {
        name
        for name, module in model.named_modules()
        if not isinstance(module, containers)
        and name.rsplit(".", 1)[-1] not in _SUBLAYER_NAMES
        and _holds_both(module)
    }
    parents = {name: module for name, module in model.named_modules()}
    counts: dict[type, int] = {}
    for module in model.modules():
        counts[type(module)] = counts.get(type(module), 0) + 1
    blocks = []
    for name in holding:
        if any(other != name and other.startswith(f"{name}.") for other in holding):
            continue  # not innermost
        module = parents[name]
        parent = parents[name.rpartition(".")[0]] if name else None
        in_stack = isinstance(parent, (nn.ModuleList, nn.Sequential))
        if name and (counts[type(module)] > 1 or in_stack):
            blocks.append(name)
    return sorted(blocks, key=lambda path: [int(p) if p.isdigit() else p for p in path.split(".")])


def has_attention(model: nn.Module) -> bool:
    """Whether any module is attention-like (a model with attention but no block module, such as XLM's parallel
    lists of attention and FFN layers, is not refused as attention-free)."""
    return any(_is_attention(module) for module in model.modules())


def sites_in(model: nn.Module, block: str) -> set[str]:
    """The site kinds ("attn", "ffn") of the adapter sites inside the block at path ``block``."""
    return {m.site for m in model.get_submodule(block).modules() if isinstance(m, AdapterSite)}


def named_in_notes(block: str, notes: tuple[str, ...]) -> bool:
    """Whether a note names the block: by its path or the path of a module that encloses it (a dotted path, or a
    single name in quotes, so that a plain word such as "encoder" in a sentence does not count)."""
    parts = block.split(".")
    prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    for note in notes:
        named = set(re.findall(r"[A-Za-z_]\w*(?:\.\w+)+", note)) | set(
            re.findall(r"['`\"]([\w.]+)['`\"]", note)
        )
        if prefixes & named:
            return True
    return False


def missed_blocks(
    model: nn.Module, blocks: list[str], kinds: tuple[str, ...], notes: tuple[str, ...]
) -> list[str]:
    """The blocks (found before adapting) missing one of the site ``kinds`` and not named in a note."""
    missed = []
    for block in blocks:
        found = sites_in(model, block)
        if not set(kinds) <= found and not named_in_notes(block, notes):
            missed.append(block if not found else f"{block} (only {', '.join(sorted(found))})")
    return missed
