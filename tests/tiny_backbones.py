"""Tiny random backbones of every registered family (hidden 32, 2 layers), with matching inputs.

The models come from the family entries (``mm_adapters.specs.FAMILIES[...].examples``); each factory here returns a
``TinyBackbone``: the model, a function making a batch, and a function running the model on a batch and returning
the tensors to compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from mm_adapters.specs import FAMILIES, TINY, Example
from mm_adapters.specs.families.hf_whisper import whisper_config  # noqa: F401  (the Whisper tests build variants)

HIDDEN, LAYERS, HEADS, FFN = TINY.hidden, TINY.layers, TINY.heads, TINY.ffn


@dataclass
class TinyBackbone:
    family: str
    model: nn.Module
    make_batch: Callable[[int], dict]
    run: Callable[[nn.Module, dict], torch.Tensor]


def _factory(family: str, example: Example, seed: int = 0) -> TinyBackbone:
    torch.manual_seed(seed)
    return TinyBackbone(family, example.build(TINY), example.inputs, example.run)


ALL_FACTORIES: dict[str, Callable[[int], TinyBackbone]] = {
    name: partial(_factory, family.name, example)
    for family in FAMILIES.values()
    for name, example in family.examples.items()
}
"""Every family entry's examples, by example name (the coverage test builds each)."""

CORE = (
    "hf_bert", "hf_vit", "hf_clip", "hf_wav2vec2", "hf_hubert", "hf_wavlm", "timm_vit", "open_clip", "hf_whisper",
)  # fmt: skip
FACTORIES: dict[str, Callable[[int], TinyBackbone]] = {name: ALL_FACTORIES[name] for name in CORE}
"""The examples the core tests parametrize over (one per block layout the injection code handles: split FFN,
tuple-returning attention, nn.MultiheadAttention, two towers, an encoder-decoder with cross-attention); the other
families run in the coverage test."""

# the factories tests import by name
hf_bert, hf_vit, hf_clip = FACTORIES["hf_bert"], FACTORIES["hf_vit"], FACTORIES["hf_clip"]
hf_wav2vec2, timm_vit, open_clip_model = (
    FACTORIES["hf_wav2vec2"],
    FACTORIES["timm_vit"],
    FACTORIES["open_clip"],
)
hf_whisper = FACTORIES["hf_whisper"]
