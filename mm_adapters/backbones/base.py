"""The task-facing view of a frozen backbone: one interface, whatever the model family.

A task module asks a :class:`Backbone` for pooled features (classification), per-modality embeddings (retrieval)
or frame features (CTC), and never looks at the model family. The raw model sits in ``.model``; that is what
:func:`mm_adapters.add_adapter` gets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class Preprocessing:
    """What the data code needs to turn raw samples into the batches this backbone expects."""

    image_size: int | None = None
    """Square input side in pixels, for image backbones."""
    image_mean: tuple[float, ...] | None = None
    """Per-channel RGB mean used to normalise pixels (after scaling them to [0, 1])."""
    image_std: tuple[float, ...] | None = None
    """Per-channel RGB standard deviation used to normalise pixels."""
    sample_rate: int | None = None
    """Audio sample rate in Hz, for audio backbones."""
    normalize_audio: bool | None = None
    """For audio backbones: whether each clip is normalised to zero mean and unit variance (Wav2Vec2: yes, the
    default; Whisper: no, its log-mel front end expects the raw waveform in [-1, 1])."""
    tokenizer: Callable[..., Any] | None = None
    """For text backbones: the Hugging Face tokenizer, or a callable ``tokenizer(texts) -> {"input_ids"}``."""
    max_length: int | None = None
    """Most text tokens the model takes (its position embeddings, capped by the loader's ``max_length``)."""

    def merged(self, **overrides: object) -> Preprocessing:
        """A copy with the given fields replaced, ignoring overrides that are None."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


class Backbone(nn.Module):
    """A frozen model plus what every task needs from it. Subclasses cover one spec family each."""

    family: ClassVar[str] = ""
    """The spec family (:func:`mm_adapters.detect_spec`) this wrapper handles."""
    modalities: ClassVar[tuple[str, ...]] = ()
    """Inputs the model reads: ``"image"``, ``"text"`` and/or ``"audio"``."""
    source: dict[str, Any] | None = None
    """What :func:`~mm_adapters.backbones.load_backbone` was called with (``name``, ``pretrained``,
    ``max_length``, ``seed``), so an export can say how to load this backbone again; None when built otherwise."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing | None = None, name: str = "") -> None:
        super().__init__()
        self.model = model
        given = preprocessing or Preprocessing()
        overrides = {field.name: getattr(given, field.name) for field in dataclasses.fields(given)}
        self.preprocessing = self.default_preprocessing(model).merged(**overrides)
        self.name = name or type(model).__name__

    @classmethod
    def from_loaded(cls, model: nn.Module, preprocessing: Preprocessing | None, name: str) -> Backbone:
        """How :func:`~mm_adapters.backbones.load_backbone` wraps a model it loaded; a family may first fit the
        model to the tasks (Whisper: its encoder alone, on a short window)."""
        return cls(model, preprocessing, name)

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        """Preprocessing read from the model itself; loaders override it with the checkpoint's processor files."""
        return Preprocessing()

    # -- what tasks ask for ----------------------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        """Width of :meth:`forward`'s output."""
        raise NotImplementedError

    def forward(self, batch: dict) -> torch.Tensor:
        """Pooled features, B x :attr:`feature_dim`, for classification."""
        raise NotImplementedError

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings, B x E (retrieval backbones only)."""
        raise self._unsupported("encode_image", "an image-text model such as CLIP")

    def encode_text(self, batch: dict) -> torch.Tensor:
        """L2-normalised text embeddings, B x E (retrieval backbones only)."""
        raise self._unsupported("encode_text", "an image-text model such as CLIP")

    @property
    def logit_scale(self) -> torch.Tensor:
        """The temperature the model was trained with, as a multiplier on cosine similarities."""
        raise self._unsupported("logit_scale", "an image-text model such as CLIP")

    def frames(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame features B x T' x D and the number of valid frames per sample (audio backbones only)."""
        raise self._unsupported("frames", "an audio model such as Wav2Vec2")

    # -- preprocessing shortcuts for the data code -----------------------------------------------------------------
    @property
    def image_size(self) -> int | None:
        return self.preprocessing.image_size

    @property
    def image_mean(self) -> tuple[float, ...] | None:
        return self.preprocessing.image_mean

    @property
    def image_std(self) -> tuple[float, ...] | None:
        return self.preprocessing.image_std

    @property
    def sample_rate(self) -> int | None:
        return self.preprocessing.sample_rate

    @property
    def normalize_audio(self) -> bool:
        return self.preprocessing.normalize_audio is not False

    @property
    def tokenizer(self) -> Callable[..., Any] | None:
        return self.preprocessing.tokenizer

    @property
    def max_length(self) -> int | None:
        return self.preprocessing.max_length

    def _unsupported(self, what: str, needed: str) -> NotImplementedError:
        return NotImplementedError(
            f"{what} is not available for the {self.family!r} backbone {self.name!r}; this task needs {needed}."
        )

    def extra_repr(self) -> str:
        return f"family={self.family!r}, name={self.name!r}"
