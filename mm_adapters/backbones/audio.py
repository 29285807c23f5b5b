"""Speech backbones: Wav2Vec2, HuBERT and WavLM (frame features; mean pooling under the frame mask)."""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone, Preprocessing
from .pooling import length_mask, masked_mean
from .registry import register_wrapper


@register_wrapper("hf_wav2vec2")
class HFAudioBackbone(Backbone):
    """``Wav2Vec2Model``, ``HubertModel``, ``WavLMModel``.

    The padding mask reaches the model only for checkpoints whose feature encoder uses layer norm
    (``feat_extract_norm == "layer"``, e.g. wav2vec2-large-lv60). Group-norm checkpoints such as wav2vec2-base
    were trained on zero-padded batches without a mask, and Hugging Face advises not to pass one; the mask is then
    used only to count valid frames for pooling and CTC.
    """

    modalities = ("audio",)

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        return Preprocessing(sample_rate=16_000)

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def min_samples(self) -> int:
        """The shortest clip, in samples, that the convolutional feature encoder turns into one frame (its
        receptive field: 400 samples, 25 ms at 16 kHz, for wav2vec2-base); shorter input fails inside the model."""
        field, stride = 1, 1
        for kernel, step in zip(self.model.config.conv_kernel, self.model.config.conv_stride, strict=True):
            field, stride = field + (kernel - 1) * stride, stride * step
        return field

    def frames(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        mask = batch.get("attention_mask")
        takes_mask = mask is not None and getattr(self.model.config, "feat_extract_norm", "layer") == "layer"
        hidden = self.model(
            batch["input_values"], attention_mask=mask if takes_mask else None
        ).last_hidden_state
        batch_size, num_frames = hidden.shape[:2]
        if mask is None:
            return hidden, torch.full((batch_size,), num_frames, dtype=torch.long, device=hidden.device)
        lengths = self.model._get_feat_extract_output_lengths(mask.sum(dim=-1)).clamp(max=num_frames)
        return hidden, lengths.long()

    def forward(self, batch: dict) -> torch.Tensor:
        hidden, lengths = self.frames(batch)
        return masked_mean(hidden, length_mask(lengths, hidden.shape[1]))
