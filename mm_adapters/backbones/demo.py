"""Small random backbones for offline demos (no ViT/CLIP/Wav2Vec2 weights are needed), one per family entry's
``demos`` (``mm_adapters.specs.FAMILIES``).

They are *untrained*: adapters on top learn from random features, so demo metrics show that training works, not
what a pretrained backbone reaches. Each builder is seeded and leaves the global random state alone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from ..specs import FAMILIES, Demo, Family
from .base import Backbone, Preprocessing
from .minilm import minilm_path
from .registry import BACKBONE_WRAPPERS


def demo_backbone(name: str, seed: int = 0) -> Backbone:
    """Build the demo backbone ``name`` (see :data:`DEMO_BACKBONES`) with weights drawn from ``seed``."""
    if name not in DEMO_BACKBONES:
        raise ValueError(f"Unknown demo backbone {name!r}; choose one of {sorted(DEMO_BACKBONES)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DEMO_BACKBONES[name]().eval()


def _minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


_TOKENIZERS = {"minilm": _minilm_tokenizer}


def _build(family: Family, demo: Demo) -> Backbone:
    tokenizer = _TOKENIZERS[demo.tokenizer]() if demo.tokenizer else None
    model = family.examples[demo.example].build(demo.size, tokenizer, **demo.options)
    preprocessing = Preprocessing(tokenizer=tokenizer) if tokenizer is not None else None
    return BACKBONE_WRAPPERS[family.wrapper](model, preprocessing, name=demo.name)


def _demo_builders() -> dict[str, Callable[[], Backbone]]:
    return {
        demo.name: partial(_build, family, demo)
        for family in FAMILIES.values()
        if family.wrapper
        for demo in family.demos
    }


DEMO_BACKBONES: dict[str, Callable[[], Backbone]] = _demo_builders()
