"""Image classification backbones: Hugging Face ViT-likes (CLS token), Hugging Face hierarchical models such as Swin
(their pooled output) and timm models (their own pooling)."""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone, Preprocessing
from .registry import register_wrapper

# google/vit-* processors normalise with 0.5 mean and std.
VIT_MEAN = (0.5, 0.5, 0.5)
VIT_STD = (0.5, 0.5, 0.5)


@register_wrapper("hf_vit")
class HFViTBackbone(Backbone):
    """``ViTModel``/``DeiTModel``: the CLS token of the final (layer-normed) hidden states, as
    ``ViTForImageClassification`` uses it."""

    modalities = ("image",)

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        return Preprocessing(image_size=int(model.config.image_size), image_mean=VIT_MEAN, image_std=VIT_STD)

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(pixel_values=batch["pixel_values"]).last_hidden_state[:, 0]


@register_wrapper("hf_pooled_vision")
class HFPooledVisionBackbone(HFViTBackbone):
    """``SwinModel``/``Swinv2Model``: the pooled output (the mean of the last stage), as their classifiers use it;
    preprocessed as ViT."""

    @property
    def feature_dim(self) -> int:
        return int(getattr(self.model, "num_features", self.model.config.hidden_size))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(pixel_values=batch["pixel_values"]).pooler_output


@register_wrapper("timm_vit")
class TimmViTBackbone(Backbone):
    """timm ``VisionTransformer``: ``forward_head(pre_logits=True)``, i.e. the model's configured pooling."""

    modalities = ("image",)

    @classmethod
    def default_preprocessing(cls, model: nn.Module) -> Preprocessing:
        from timm.data import resolve_model_data_config

        data_config = resolve_model_data_config(model)
        # the built size differs from the config's when overridden
        built_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
        return Preprocessing(
            image_size=int(built_size[0] if built_size else data_config["input_size"][-1]),
            image_mean=tuple(data_config["mean"]),
            image_std=tuple(data_config["std"]),
        )

    @property
    def feature_dim(self) -> int:
        return int(getattr(self.model, "head_hidden_size", self.model.num_features))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(batch["pixel_values"]), pre_logits=True)
