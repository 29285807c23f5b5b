"""Tiny random backbones of every supported family (hidden 32, 2 layers), with matching inputs.

Each factory returns a ``TinyBackbone``: the model, a function making a batch, and a function running the model
on a batch and returning the tensors to compare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

HIDDEN, LAYERS, HEADS, FFN = 32, 2, 4, 64


@dataclass
class TinyBackbone:
    family: str
    model: nn.Module
    make_batch: Callable[[int], dict]
    run: Callable[[nn.Module, dict], torch.Tensor]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def hf_bert(seed: int = 0) -> TinyBackbone:
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=100,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertModel(config).eval()

    def make_batch(seed: int = 0) -> dict:
        ids = torch.randint(0, 100, (2, 10), generator=_generator(seed))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return TinyBackbone("hf_bert", model, make_batch, lambda m, b: m(**b).last_hidden_state)


def hf_vit(seed: int = 0) -> TinyBackbone:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = ViTModel(config, add_pooling_layer=False).eval()
    return TinyBackbone(
        "hf_vit", model, _images, lambda m, b: m(pixel_values=b["pixel_values"]).last_hidden_state
    )


def hf_clip(seed: int = 0) -> TinyBackbone:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    tower = dict(
        hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN
    )
    config = CLIPConfig(
        text_config=dict(vocab_size=100, max_position_embeddings=16, **tower),
        vision_config=dict(image_size=32, patch_size=8, **tower),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()

    def make_batch(seed: int = 0) -> dict:
        batch = _images(seed)
        batch["input_ids"] = torch.randint(0, 100, (2, 8), generator=_generator(seed + 1))
        return batch

    def run(m: nn.Module, b: dict) -> torch.Tensor:
        out = m(input_ids=b["input_ids"], pixel_values=b["pixel_values"])
        return torch.cat([out.image_embeds, out.text_embeds], dim=0)

    return TinyBackbone("hf_clip", model, make_batch, run)


def _audio_config(config_cls):
    return config_cls(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=4,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        layerdrop=0.0,
        mask_time_prob=0.0,
        vocab_size=12,
    )


def _audio(seed: int = 0) -> dict:
    return {"input_values": torch.randn(2, 1600, generator=_generator(seed))}


def _audio_backbone(family: str, model_name: str, config_name: str, seed: int) -> TinyBackbone:
    import transformers

    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(_audio_config(getattr(transformers, config_name))).eval()
    return TinyBackbone(family, model, _audio, lambda m, b: m(**b).last_hidden_state)


def hf_wav2vec2(seed: int = 0) -> TinyBackbone:
    return _audio_backbone("hf_wav2vec2", "Wav2Vec2Model", "Wav2Vec2Config", seed)


def hf_hubert(seed: int = 0) -> TinyBackbone:
    return _audio_backbone("hf_wav2vec2", "HubertModel", "HubertConfig", seed)


def hf_wavlm(seed: int = 0) -> TinyBackbone:
    return _audio_backbone("hf_wav2vec2", "WavLMModel", "WavLMConfig", seed)


def timm_vit(seed: int = 0) -> TinyBackbone:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    model = VisionTransformer(
        img_size=32,
        patch_size=8,
        embed_dim=HIDDEN,
        depth=LAYERS,
        num_heads=HEADS,
        mlp_ratio=2.0,
        num_classes=0,
    ).eval()
    return TinyBackbone("timm_vit", model, _images, lambda m, b: m.forward_features(b["pixel_values"]))


def open_clip_model(seed: int = 0) -> TinyBackbone:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    model = CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(
            layers=LAYERS, width=HIDDEN, head_width=8, patch_size=8, image_size=32, mlp_ratio=2.0
        ),
        text_cfg=CLIPTextCfg(
            context_length=8, vocab_size=100, width=HIDDEN, heads=HEADS, layers=LAYERS, mlp_ratio=2.0
        ),
    ).eval()

    def make_batch(seed: int = 0) -> dict:
        batch = _images(seed)
        batch["text"] = torch.randint(1, 100, (2, 8), generator=_generator(seed + 1))
        return batch

    def run(m: nn.Module, b: dict) -> torch.Tensor:
        return torch.cat([m.encode_image(b["pixel_values"]), m.encode_text(b["text"])], dim=0)

    return TinyBackbone("open_clip", model, make_batch, run)


def _images(seed: int = 0) -> dict:
    return {"pixel_values": torch.randn(2, 3, 32, 32, generator=_generator(seed))}


FACTORIES: dict[str, Callable[[int], TinyBackbone]] = {
    "hf_bert": hf_bert,
    "hf_vit": hf_vit,
    "hf_clip": hf_clip,
    "hf_wav2vec2": hf_wav2vec2,
    "hf_hubert": hf_hubert,
    "hf_wavlm": hf_wavlm,
    "timm_vit": timm_vit,
    "open_clip": open_clip_model,
}
