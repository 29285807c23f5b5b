"""Tiny random BERT, RoBERTa, ViT and CLIP for the AdapterHub interop tests and fixtures (hidden 32, 2 layers).

Unlike ``tiny_backbones`` the models are built from their config alone, so the AdapterHub peer environment
(transformers 4.57) and the main one (5.x) build them the same way from a saved folder.
"""

from __future__ import annotations

import torch

from tiny_backbones import HEADS, HIDDEN, LAYERS, TinyBackbone

_TOWER = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=64)
_NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _ids(seed: int, length: int = 10, low: int = 3) -> torch.Tensor:
    return torch.randint(low, 100, (2, length), generator=torch.Generator().manual_seed(seed))


def _text(model, family):
    def make_batch(seed: int = 0) -> dict:
        ids = _ids(seed)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    return TinyBackbone(family, model.eval(), make_batch, lambda m, b: m(**b).last_hidden_state)


def bert(seed: int = 0) -> TinyBackbone:
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, max_position_embeddings=64, **_TOWER, **_NO_DROPOUT)
    return _text(BertModel(config, add_pooling_layer=False), "hf_bert")


def roberta(seed: int = 0) -> TinyBackbone:
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=100, max_position_embeddings=66, pad_token_id=1, **_TOWER, **_NO_DROPOUT
    )
    return _text(RobertaModel(config, add_pooling_layer=False), "hf_bert")


def _images(seed: int = 0) -> dict:
    return {"pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))}


def vit(seed: int = 0) -> TinyBackbone:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    config = ViTConfig(image_size=32, patch_size=8, **_TOWER, **_NO_DROPOUT)
    model = ViTModel(config, add_pooling_layer=False).eval()
    return TinyBackbone(
        "hf_vit", model, _images, lambda m, b: m(pixel_values=b["pixel_values"]).last_hidden_state
    )


def clip(seed: int = 0) -> TinyBackbone:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=100, max_position_embeddings=16, **_TOWER),
        vision_config=dict(image_size=32, patch_size=8, **_TOWER),
        projection_dim=16,
    )

    def make_batch(seed: int = 0) -> dict:
        return {**_images(seed), "input_ids": _ids(seed + 1, length=8)}

    def run(m, b) -> torch.Tensor:
        out = m(input_ids=b["input_ids"], pixel_values=b["pixel_values"])
        return torch.cat(
            [
                out.text_model_output.last_hidden_state.flatten(1),
                out.vision_model_output.last_hidden_state.flatten(1),
            ],
            dim=1,
        )

    return TinyBackbone("hf_clip", CLIPModel(config).eval(), make_batch, run)


FACTORIES = {"bert": bert, "roberta": roberta, "vit": vit, "clip": clip}


def from_folder(family: str, folder) -> TinyBackbone:
    """The tiny backbone of ``family`` with the weights saved in ``folder`` (``save_pretrained``)."""
    import transformers

    tiny = FACTORIES[family]()
    model = getattr(transformers, type(tiny.model).__name__).from_pretrained(folder).eval()
    return TinyBackbone(tiny.family, model, tiny.make_batch, tiny.run)
