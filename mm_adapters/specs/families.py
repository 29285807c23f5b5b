"""Backbone families. Adding one is one ``register_backbone`` call with the module paths of its blocks."""

from __future__ import annotations

from .base import BackboneSpec, SiteSpec, TowerSpec
from .registry import register_backbone

# Hugging Face BERT-style post-norm encoders: the FFN is split into ``intermediate`` (input) and ``output.dense``.
_HF_BERT_LAYER = dict(
    attn=SiteSpec(output="attention.output.dense", input="attention", norm="attention.output.LayerNorm"),
    ffn=SiteSpec(output="output.dense", input="intermediate", norm="output.LayerNorm"),
    hidden_size="output.dense.out_features",
    norm_position="post",
)

register_backbone(
    BackboneSpec(
        family="hf_bert",
        class_names=("BertModel", "RobertaModel", "XLMRobertaModel", "CamembertModel", "ElectraModel"),
        towers={"text": TowerSpec(layers="encoder.layer", batch_args=("attention_mask",), **_HF_BERT_LAYER)},
    )
)

# Hugging Face ViT: transformers 5 has ``layers`` of ``attention`` (with o_proj) and one ``mlp``;
# 4.57 has ``encoder.layer`` and splits the FFN like BERT.
register_backbone(
    BackboneSpec(
        family="hf_vit",
        class_names=("ViTModel", "DeiTModel"),
        towers={
            "vision": TowerSpec(
                layers="layers|encoder.layer",
                attn=SiteSpec(output="attention", norm="layernorm_before"),
                ffn=SiteSpec(output="mlp|output.dense", input="mlp|intermediate", norm="layernorm_after"),
                hidden_size="mlp.fc2.out_features|output.dense.out_features",
                norm_position="pre",
            )
        },
    )
)

# Hugging Face CLIP: both towers share the block layout; attention returns (hidden, weights).
_HF_CLIP_LAYER = dict(
    attn=SiteSpec(output="self_attn", norm="layer_norm1"),
    ffn=SiteSpec(output="mlp", norm="layer_norm2"),
    hidden_size="mlp.fc2.out_features",
    norm_position="pre",
    batch_args=("attention_mask", "causal_attention_mask"),
)

register_backbone(
    BackboneSpec(
        family="hf_clip",
        class_names=("CLIPModel",),
        towers={
            "vision": TowerSpec(layers="vision_model.encoder.layers", **_HF_CLIP_LAYER),
            "text": TowerSpec(layers="text_model.encoder.layers", parallel_branch=False, **_HF_CLIP_LAYER),
        },
    )
)

# Wav2Vec2, HuBERT and WavLM: attention returns a tuple; the FFN is one module.
register_backbone(
    BackboneSpec(
        family="hf_wav2vec2",
        class_names=("Wav2Vec2Model", "HubertModel", "WavLMModel", "Data2VecAudioModel"),
        towers={
            "audio": TowerSpec(
                layers="encoder.layers",
                attn=SiteSpec(output="attention", norm="layer_norm"),
                ffn=SiteSpec(output="feed_forward", norm="final_layer_norm"),
                hidden_size="feed_forward.output_dense.out_features",
                # the "stable layer norm" blocks (large checkpoints) are pre-LN, the base ones post-LN
                norm_position=lambda block: (
                    "pre" if type(block).__name__.endswith("StableLayerNorm") else "post"
                ),
                batch_args=("attention_mask", "position_bias"),
            )
        },
    )
)

register_backbone(
    BackboneSpec(
        family="timm_vit",
        class_names=("VisionTransformer",),
        towers={
            "vision": TowerSpec(
                layers="blocks",
                attn=SiteSpec(output="attn", norm="norm1"),
                ffn=SiteSpec(output="mlp", norm="norm2"),
                hidden_size="mlp.fc2.out_features",
                norm_position="pre",
            )
        },
    )
)

# open_clip: attention is nn.MultiheadAttention, which does not call out_proj as a module: adapt its output.
_OPEN_CLIP_BLOCK = dict(
    attn=SiteSpec(output="attn", norm="ln_1"),
    ffn=SiteSpec(output="mlp", norm="ln_2"),
    hidden_size="mlp.c_proj.out_features",
    norm_position="pre",
)

register_backbone(
    BackboneSpec(
        family="open_clip",
        class_names=("CLIP",),
        towers={
            "vision": TowerSpec(layers="visual.transformer.resblocks", **_OPEN_CLIP_BLOCK),
            "text": TowerSpec(layers="transformer.resblocks", parallel_branch=False, **_OPEN_CLIP_BLOCK),
        },
    )
)

register_backbone(
    BackboneSpec(
        family="open_clip_custom_text",
        class_names=("CustomTextCLIP",),
        towers={
            "vision": TowerSpec(layers="visual.transformer.resblocks", **_OPEN_CLIP_BLOCK),
            "text": TowerSpec(layers="text.transformer.resblocks", parallel_branch=False, **_OPEN_CLIP_BLOCK),
        },
    )
)
