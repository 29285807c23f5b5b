"""Image-text backbones for retrieval: Hugging Face ``CLIPModel`` and open_clip ``CLIP``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone, Preprocessing
from .registry import register_wrapper
from .tokenizers import OpenCLIPTextTokenizer

# The normalisation OpenAI CLIP was trained with (also open_clip's default).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_LOGIT_SCALE = 100.0


class _CLIPBackbone(Backbone):
    """Shared by both CLIP families: classification features are the (unnormalised) image embeddings."""

    modalities = ("image", "text")

    def forward(self, batch: dict) -> torch.Tensor:
        return self._image_features(batch["pixel_values"])

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._image_features(pixel_values), dim=-1)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register_wrapper("hf_clip")
class HFCLIPBackbone(_CLIPBackbone):
    """Hugging Face ``CLIPModel``; projects the towers' pooled outputs itself, the same on transformers 4 and 5."""

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        size = int(model.config.vision_config.image_size)
        max_length = int(model.config.text_config.max_position_embeddings)
        return Preprocessing(image_size=size, image_mean=CLIP_MEAN, image_std=CLIP_STD, max_length=max_length)

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.visual_projection(self.model.vision_model(pixel_values=pixel_values).pooler_output)

    def encode_text(self, batch: dict) -> torch.Tensor:
        pooled = self.model.text_model(
            input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")
        ).pooler_output
        return F.normalize(self.model.text_projection(pooled), dim=-1)


@register_wrapper("open_clip")
class OpenCLIPBackbone(_CLIPBackbone):
    """open_clip ``CLIP`` (and ``CustomTextCLIP``); the default tokenizer is open_clip's BPE at the model's
    context length."""

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        from open_clip.tokenizer import SimpleTokenizer

        size = model.visual.image_size
        return Preprocessing(
            image_size=int(size[0] if isinstance(size, (tuple, list)) else size),
            image_mean=tuple(getattr(model.visual, "image_mean", None) or CLIP_MEAN),
            image_std=tuple(getattr(model.visual, "image_std", None) or CLIP_STD),
            tokenizer=OpenCLIPTextTokenizer(SimpleTokenizer(), int(model.context_length)),
            max_length=int(model.context_length),
        )

    @property
    def feature_dim(self) -> int:
        return int(self.model.visual.output_dim)

    def _image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    def encode_text(self, batch: dict) -> torch.Tensor:
        return self.model.encode_text(batch["input_ids"], normalize=True)
