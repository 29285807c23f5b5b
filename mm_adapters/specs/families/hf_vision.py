"""Hugging Face image encoders and image-text models."""

from __future__ import annotations

import torch
from torch import nn

from ..base import BackboneSpec, SiteSpec, TowerSpec
from ..family import TINY, Demo, Example, Family, ModelSize, image_batch, seeded
from ..registry import register_family


def _vit_config(config_class: str, size: ModelSize, **extra):
    import transformers

    return getattr(transformers, config_class)(
        image_size=32, patch_size=8, hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=size.ffn, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, **extra,
    )  # fmt: skip


def _vision_example(
    model_class: str, config_class: str, model_kwargs: dict | None = None, **extra
) -> Example:
    def build(size: ModelSize = TINY, tokenizer=None):
        import transformers

        config = _vit_config(config_class, size, **extra)
        return getattr(transformers, model_class)(config, **(model_kwargs or {})).eval()

    return Example(build, image_batch, lambda m, b: m(pixel_values=b["pixel_values"]).last_hidden_state)


# ViT-style blocks. transformers 5 has ``layers`` of ``attention`` (with o_proj) and one ``mlp``; 4.57 has
# ``encoder.layer`` and splits the FFN like BERT. DINOv2 keeps ``encoder.layer`` with ``attention`` and ``mlp``.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_vit",
            class_names=("ViTModel", "DeiTModel"),
            model_types=(
                "vit",
                "deit",
                "vit_mae",
                "vit_msn",
                "beit",
                "dinov2",
                "dinov2_with_registers",
                "dpt",
            ),
            towers={
                "vision": TowerSpec(
                    layers="layers|encoder.layer",
                    attn=SiteSpec(output="attention", norm="layernorm_before|norm1"),
                    ffn=SiteSpec(
                        output="mlp|output.dense", input="mlp|intermediate", norm="layernorm_after|norm2"
                    ),
                    norm_position="pre",
                    hidden_size="mlp.fc2.out_features|output.dense.out_features",
                )
            },
        ),
        wrapper="hf_vit",
        examples={
            "hf_vit": _vision_example("ViTModel", "ViTConfig", {"add_pooling_layer": False}),
            "hf_dinov2": _vision_example("Dinov2Model", "Dinov2Config"),
        },
        demos=(Demo("demo-vit", "hf_vit"),),
    )
)

# Data2Vec-vision keeps BEiT's layer-scaled blocks with BERT-style module names.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_data2vec_vision",
            class_names=("Data2VecVisionModel",),
            model_types=("data2vec-vision",),
            towers={
                "vision": TowerSpec(
                    layers="encoder.layer",
                    attn=SiteSpec(
                        output="attention.output.dense", input="attention", norm="layernorm_before"
                    ),
                    ffn=SiteSpec(output="output.dense", input="intermediate", norm="layernorm_after"),
                    norm_position="pre",
                )
            },
        ),
        wrapper="hf_vit",
    )
)

# Swin / Swin-v2: stages of blocks, each stage wider than the last; ``*`` lists every stage's blocks in order.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_swin",
            class_names=("SwinModel", "Swinv2Model", "DonutSwinModel"),
            model_types=("swin", "swinv2", "donut-swin"),
            towers={
                "vision": TowerSpec(
                    layers="encoder.layers.*.blocks",
                    attn=SiteSpec(output="attention", norm="layernorm_before"),
                    ffn=SiteSpec(output="mlp|output.dense", input="mlp|intermediate", norm="layernorm_after"),
                    # Swin-v2 normalises each sublayer output before its residual add (res-post-norm): its sites sit
                    # on those norms (layernorm_before follows the attention there, layernorm_after the FFN)
                    norm_position=lambda block: (
                        "res_post" if type(block).__name__ == "Swinv2Layer" else "pre"
                    ),
                )
            },
        ),
        wrapper="hf_pooled_vision",
        examples={
            "hf_swin": Example(
                lambda size=TINY, tokenizer=None: _swin(size),
                image_batch,
                lambda m, b: m(pixel_values=b["pixel_values"]).last_hidden_state,
            )
        },
    )
)


def _swin(size: ModelSize) -> nn.Module:
    from transformers import SwinConfig, SwinModel

    config = SwinConfig(
        image_size=32, patch_size=4, embed_dim=size.hidden // 2, depths=[1, 1], num_heads=[2, 4], window_size=4,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0,
    )  # fmt: skip
    return SwinModel(config).eval()


# CLIP-style dual encoders: both towers share the block layout; attention returns (hidden, weights).
_CLIP_LAYER = dict(
    attn=SiteSpec(output="self_attn", norm="layer_norm1"),
    ffn=SiteSpec(output="mlp", norm="layer_norm2"),
    hidden_size="mlp.fc2.out_features",
    norm_position="pre",
    batch_args=("attention_mask", "causal_attention_mask"),
)


def _clip_example(seed_offset: int = 1) -> Example:
    def build(size: ModelSize = TINY, tokenizer=None):
        from transformers import CLIPConfig, CLIPModel

        tower = dict(
            hidden_size=size.hidden, num_hidden_layers=size.layers, num_attention_heads=size.heads,
            intermediate_size=size.ffn,
        )  # fmt: skip
        text = dict(vocab_size=100, max_position_embeddings=16)
        if tokenizer is not None:  # WordPiece: CLIP pools at the [SEP] (eos) token
            text = dict(
                vocab_size=len(tokenizer), max_position_embeddings=24, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
            )  # fmt: skip
        config = CLIPConfig(
            text_config=dict(**text, **tower),
            vision_config=dict(image_size=32, patch_size=8, **tower),
            projection_dim=16 if tokenizer is None else size.hidden,
        )
        return CLIPModel(config).eval()

    def inputs(seed: int = 0) -> dict:
        batch = image_batch(seed)
        batch["input_ids"] = torch.randint(0, 100, (2, 8), generator=seeded(seed + seed_offset))
        return batch

    def run(m: nn.Module, b: dict) -> torch.Tensor:
        out = m(input_ids=b["input_ids"], pixel_values=b["pixel_values"])
        return torch.cat([out.image_embeds, out.text_embeds], dim=0)

    return Example(build, inputs, run)


register_family(
    Family(
        spec=BackboneSpec(
            family="hf_clip",
            class_names=("CLIPModel",),
            model_types=("clip",),
            towers={
                "vision": TowerSpec(layers="vision_model.encoder.layers", **_CLIP_LAYER),
                "text": TowerSpec(layers="text_model.encoder.layers", parallel_branch=False, **_CLIP_LAYER),
            },
        ),
        wrapper="hf_clip",
        examples={"hf_clip": _clip_example()},
        demos=(Demo("demo-hf-clip", "hf_clip", tokenizer="minilm"),),
    )
)

register_family(
    Family(
        spec=BackboneSpec(
            family="hf_siglip",
            class_names=("SiglipModel", "Siglip2Model"),
            model_types=("siglip", "siglip2"),
            towers={
                "vision": TowerSpec(layers="vision_model.encoder.layers", **_CLIP_LAYER),
                "text": TowerSpec(layers="text_model.encoder.layers", parallel_branch=False, **_CLIP_LAYER),
            },
        ),
    )
)

# One tower of a CLIP-style model on its own (``CLIPVisionModel``, ``SiglipVisionModel``, ``CLIPTextModel``, ...):
# found through ``vision_model`` / ``text_model``, the base model of those classes.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_clip_vision",
            class_names=("CLIPVisionTransformer", "SiglipVisionTransformer", "Siglip2VisionTransformer"),
            model_types=("clip_vision_model", "siglip_vision_model", "siglip2_vision_model"),
            towers={"vision": TowerSpec(layers="encoder.layers", **_CLIP_LAYER)},
        ),
    )
)

register_family(
    Family(
        spec=BackboneSpec(
            family="hf_clip_text",
            class_names=("CLIPTextTransformer", "SiglipTextTransformer", "Siglip2TextTransformer"),
            model_types=("clip_text_model", "siglip_text_model", "siglip2_text_model"),
            towers={"text": TowerSpec(layers="encoder.layers", parallel_branch=False, **_CLIP_LAYER)},
        ),
    )
)
