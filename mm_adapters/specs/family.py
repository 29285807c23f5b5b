"""One entry per backbone family: its spec, the task wrapper that serves it, tiny examples and its demo model.

timm's ``@register_model`` is the model for this: everything the rest of the code knows about a family is in its
:class:`Family` entry, and the rest of the code asks :data:`mm_adapters.specs.FAMILIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .base import BackboneSpec


@dataclass(frozen=True)
class ModelSize:
    """How big to build an example model: tiny for tests, a little larger for demos."""

    hidden: int = 32
    layers: int = 2
    heads: int = 4
    ffn: int = 64


TINY = ModelSize()
DEMO = ModelSize(hidden=128, layers=4, heads=4, ffn=512)


@dataclass(frozen=True)
class Example:
    """A model of the family built with random weights, offline, and how to feed it.

    ``build(size, tokenizer=None, **options)`` returns the model in eval mode (a text model sized to the tokenizer
    when one is given); ``inputs(seed)`` a batch for it (tensors, batch 2); ``run(model, batch)`` the output tensor
    to compare (frozen base vs adapted).
    """

    build: Callable[..., nn.Module]
    inputs: Callable[[int], dict[str, torch.Tensor]]
    run: Callable[[nn.Module, dict], torch.Tensor]


@dataclass(frozen=True)
class Demo:
    """A demo backbone of the family (``mm_adapters.backbones.demo_backbone(name)``), built from one example."""

    name: str
    example: str
    """Key in :attr:`Family.examples`."""
    tokenizer: str | None = None
    """Which bundled tokenizer the demo uses: ``"minilm"`` (WordPiece) or None (no text, or the model's own)."""
    size: ModelSize = DEMO
    options: dict = field(default_factory=dict)
    """Extra keyword arguments for the example's ``build``."""


@dataclass(frozen=True)
class Family:
    spec: BackboneSpec
    wrapper: str | None = None
    """Name of the task wrapper (``mm_adapters.backbones.register_wrapper``) that serves the family's base model;
    None: adapters only, no task wrapper."""
    examples: dict[str, Example] = field(default_factory=dict)
    """Tiny random models of the family by name (tests build every one; ``tests/tiny_backbones.py``)."""
    demos: tuple[Demo, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.family


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image_batch(seed: int = 0, size: int = 32) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.randn(2, 3, size, size, generator=seeded(seed))}


def token_batch(seed: int = 0, vocab_size: int = 100, length: int = 10) -> dict[str, torch.Tensor]:
    ids = torch.randint(5, vocab_size, (2, length), generator=seeded(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def audio_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    return {"input_values": torch.randn(2, 1600, generator=seeded(seed))}


def last_hidden_state(model: nn.Module, batch: dict) -> torch.Tensor:
    return model(**batch).last_hidden_state
