"""Backbone families. Adding one is one ``register_backbone`` call with the module paths of its blocks."""

from __future__ import annotations

from .base import BackboneSpec, SiteSpec, TowerSpec
from .registry import register_backbone

# Hugging Face BERT-style post-norm encoders: the FFN is split into ``intermediate`` (input) and ``output.dense``.
_HF_BERT_LAYER = dict(
    attn=SiteSpec(output="attention.output.dense", input="attention"),
    ffn=SiteSpec(output="output.dense", input="intermediate"),
    hidden_size="output.dense.out_features",
)

register_backbone(
    BackboneSpec(
        family="hf_bert",
        class_names=("BertModel", "RobertaModel", "XLMRobertaModel", "CamembertModel", "ElectraModel"),
        towers={"text": TowerSpec(layers="encoder.layer", **_HF_BERT_LAYER)},
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
                attn=SiteSpec(output="attention"),
                ffn=SiteSpec(output="mlp|output.dense", input="mlp|intermediate"),
                hidden_size="mlp.fc2.out_features|output.dense.out_features",
            )
        },
    )
)

# Hugging Face CLIP: both towers share the block layout; attention returns (hidden, weights).
_HF_CLIP_LAYER = dict(
    attn=SiteSpec(output="self_attn"), ffn=SiteSpec(output="mlp"), hidden_size="mlp.fc2.out_features"
)

register_backbone(
    BackboneSpec(
        family="hf_clip",
        class_names=("CLIPModel",),
        towers={
            "vision": TowerSpec(layers="vision_model.encoder.layers", **_HF_CLIP_LAYER),
            "text": TowerSpec(layers="text_model.encoder.layers", **_HF_CLIP_LAYER),
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
                attn=SiteSpec(output="attention"),
                ffn=SiteSpec(output="feed_forward"),
                hidden_size="feed_forward.output_dense.out_features",
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
                attn=SiteSpec(output="attn"),
                ffn=SiteSpec(output="mlp"),
                hidden_size="mlp.fc2.out_features",
            )
        },
    )
)

# open_clip: attention is nn.MultiheadAttention, which does not call out_proj as a module: adapt its output.
_OPEN_CLIP_BLOCK = dict(
    attn=SiteSpec(output="attn"), ffn=SiteSpec(output="mlp"), hidden_size="mlp.c_proj.out_features"
)

register_backbone(
    BackboneSpec(
        family="open_clip",
        class_names=("CLIP",),
        towers={
            "vision": TowerSpec(layers="visual.transformer.resblocks", **_OPEN_CLIP_BLOCK),
            "text": TowerSpec(layers="transformer.resblocks", **_OPEN_CLIP_BLOCK),
        },
    )
)

register_backbone(
    BackboneSpec(
        family="open_clip_custom_text",
        class_names=("CustomTextCLIP",),
        towers={
            "vision": TowerSpec(layers="visual.transformer.resblocks", **_OPEN_CLIP_BLOCK),
            "text": TowerSpec(layers="text.transformer.resblocks", **_OPEN_CLIP_BLOCK),
        },
    )
)
