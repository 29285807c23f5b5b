"""Text classification backbones: Hugging Face BERT-style encoders, mean-pooled as sentence-transformers does."""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone, Preprocessing
from .pooling import masked_mean
from .registry import register_wrapper


@register_wrapper("hf_bert")
class HFTextBackbone(Backbone):
    """``BertModel``, ``RobertaModel``, ...: the mean of the last hidden states over real (unpadded) tokens.

    Mean pooling is what sentence-transformers models such as all-MiniLM-L6-v2 were trained with, and a good
    default for bert-base as well when the encoder is frozen.
    """

    modalities = ("text",)

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        return Preprocessing(max_length=min(int(model.config.max_position_embeddings), 512))

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, batch: dict) -> torch.Tensor:
        mask = batch.get("attention_mask")
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        return masked_mean(hidden, mask)
