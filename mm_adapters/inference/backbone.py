"""Loading the backbone an export names, and checking it preprocesses as the training did."""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..backbones import Backbone, BackboneNotFoundError, load_backbone, load_whisper_seq2seq
from ..lightning.task_description import preprocessing_of
from .exports import BackboneKey, UsageError

CHECKED = ("image_size", "image_mean", "image_std", "sample_rate", "normalize_audio", "max_length")
"""Preprocessing fields compared with task.json (the tokenizer is compared by the model it belongs to)."""


def load_task_backbone(key: BackboneKey) -> Backbone:
    """The backbone of ``key``, in eval mode. UsageError when the name points at nothing loadable."""
    try:
        if key.seq2seq:
            backbone = load_whisper_seq2seq(key.name)
        else:
            options: dict[str, Any] = {"pretrained": key.pretrained, "seed": key.seed}
            if key.max_length is not None:
                options["max_length"] = key.max_length
            backbone = load_backbone(key.name, **options)
    except (BackboneNotFoundError, ValueError, OSError) as error:
        raise UsageError(
            f"Cannot load backbone {key.name!r}: {error} (pass --backbone NAME to use another).", "backbone"
        ) from None
    return backbone.eval()


def check_preprocessing(backbone: Backbone, recorded: dict[str, Any], where: str) -> None:
    """Warn when the loaded backbone would preprocess otherwise than the training did (another image size,
    normalisation or sample rate): predictions would then drift from the validation metrics."""
    if not recorded:
        return
    now = preprocessing_of(backbone)
    differing = [
        f"{name} {recorded[name]!r} in training, {now[name]!r} now"
        for name in CHECKED
        if recorded.get(name) is not None and not _same(recorded[name], now[name])
    ]
    if differing:
        warnings.warn(
            f"{where}: backbone {backbone.name!r} preprocesses otherwise than the training did ("
            + "; ".join(differing)
            + "). Pass the backbone it was trained on with --backbone.",
            stacklevel=2,
        )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and math.isclose(float(a), float(b), rel_tol=1e-6)
    return a == b
