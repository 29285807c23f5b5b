"""Inputs -> the batches a backbone takes, through the training collators (no second copy of the preprocessing).

Each input is a :class:`InputItem`: an image (path, PIL image or ``{"bytes": ...}``), a text, or an audio clip
(path or ``{"bytes": ...}``). The collators want a label and a row index; inference gives them placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..backbones import Backbone
from ..data import (
    AudioClassificationCollator,
    ImageClassificationCollator,
    ImageTransform,
    TextClassificationCollator,
)
from ..data.text import encode_texts
from .exports import UsageError

MODALITIES = ("image", "text", "audio")


@dataclass
class InputItem:
    """One thing to predict on, with the ``id`` it is reported under (a path, a row number, a request id)."""

    id: str
    modality: str
    value: Any


def collate(backbone: Backbone, items: Sequence[InputItem], crop: bool = False) -> dict[str, Any]:
    """The batch for ``items`` (all of one modality) as the training collators make it for ``backbone``.
    ``crop``: the CLIP-style resize-and-centre-crop the retrieval recipe trains with. Raises UsageError naming
    the input that cannot be read."""
    modality = items[0].modality
    if any(item.modality != modality for item in items):
        raise ValueError("collate takes inputs of one modality; group them first.")
    if modality == "image":
        transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std, crop=crop)
        collator = ImageClassificationCollator(transform)
        rows = [{"image": item.value} for item in items]
    elif modality == "text":
        collator = TextClassificationCollator(backbone.tokenizer, backbone.max_length)
        rows = [{"text": item.value} for item in items]
    elif modality == "audio":
        collator = AudioClassificationCollator(
            backbone.sample_rate,
            min_samples=getattr(backbone, "min_samples", 1),
            normalize=backbone.normalize_audio,
        )
        rows = [{"path": item.value} for item in items]
    else:
        raise UsageError(f"Unknown input kind {modality!r}; inputs are one of {MODALITIES}.", "input")
    rows = [{**row, "label": 0, "index": i} for i, row in enumerate(rows)]
    try:
        batch = collator(rows)
    except (ValueError, TypeError, OSError) as error:
        raise UsageError(f"{_culprit(backbone, items, modality, crop)}: {error}", modality) from None
    batch.pop("labels")
    return batch


def encode_candidate_texts(backbone: Backbone, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Captions to rank, tokenised as the retrieval collator tokenises them."""
    return encode_texts(backbone.tokenizer, list(texts), backbone.max_length)


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}


def _culprit(backbone: Backbone, items: Sequence[InputItem], modality: str, crop: bool) -> str:
    """The first input the collator fails on, found by collating one at a time (only after a failure)."""
    for item in items:
        try:
            collate(backbone, [item], crop) if len(items) > 1 else None
        except UsageError:
            return f"Cannot read {modality} input {item.id}"
    return (
        f"Cannot read {modality} input {items[0].id}"
        if len(items) == 1
        else f"Cannot read the {modality} inputs"
    )
