"""Small random backbones, one per family, for offline demos (no ViT/CLIP/Wav2Vec2 weights are needed).

They are *untrained*: adapters on top learn from random features, so demo metrics show that training works, not
what a pretrained backbone reaches. Each builder is seeded and leaves the global random state alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .audio import HFAudioBackbone
from .base import Backbone, Preprocessing
from .clip import HFCLIPBackbone, OpenCLIPBackbone
from .minilm import minilm_path
from .text import HFTextBackbone
from .vision import HFViTBackbone, TimmViTBackbone

DEMO_BACKBONES: dict[str, Callable[[], Backbone]] = {}
WIDTH, LAYERS, HEADS = 128, 4, 4


def demo_backbone(name: str, seed: int = 0) -> Backbone:
    """Build the demo backbone ``name`` (see :data:`DEMO_BACKBONES`) with weights drawn from ``seed``."""
    if name not in DEMO_BACKBONES:
        raise ValueError(f"Unknown demo backbone {name!r}; choose one of {sorted(DEMO_BACKBONES)}.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DEMO_BACKBONES[name]().eval()


def _register(name: str) -> Callable[[Callable[[], Backbone]], Callable[[], Backbone]]:
    def register(build: Callable[[], Backbone]) -> Callable[[], Backbone]:
        DEMO_BACKBONES[name] = build
        return build

    return register


def _minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())


@_register("demo-vit")
def _demo_vit() -> Backbone:
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=4 * WIDTH,
    )  # fmt: skip
    return HFViTBackbone(ViTModel(config, add_pooling_layer=False), name="demo-vit")


@_register("demo-timm-vit")
def _demo_timm_vit() -> Backbone:
    import timm

    model = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32, patch_size=8, embed_dim=WIDTH,
        depth=LAYERS, num_heads=HEADS,
    )  # fmt: skip
    return TimmViTBackbone(model, name="demo-timm-vit")


@_register("demo-clip")
def _demo_open_clip() -> Backbone:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    model = CLIP(
        embed_dim=WIDTH,
        vision_cfg=CLIPVisionCfg(
            layers=LAYERS, width=WIDTH, head_width=WIDTH // HEADS, patch_size=8, image_size=32
        ),
        text_cfg=CLIPTextCfg(context_length=24, vocab_size=49408, width=WIDTH, heads=HEADS, layers=LAYERS),
    )
    return OpenCLIPBackbone(model, name="demo-clip")


@_register("demo-hf-clip")
def _demo_hf_clip() -> Backbone:
    from transformers import CLIPConfig, CLIPModel

    tokenizer = _minilm_tokenizer()  # WordPiece; CLIP pools at its [SEP] (eos) token
    tower = dict(
        hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=4 * WIDTH
    )
    text_config = dict(
        vocab_size=len(tokenizer), max_position_embeddings=24, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **tower,
    )  # fmt: skip
    config = CLIPConfig(
        text_config=text_config,
        vision_config=dict(image_size=32, patch_size=8, **tower),
        projection_dim=WIDTH,
    )
    return HFCLIPBackbone(CLIPModel(config), Preprocessing(tokenizer=tokenizer), name="demo-hf-clip")


@_register("demo-wav2vec2")
def _demo_wav2vec2() -> Backbone:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=4 * WIDTH,
        conv_dim=(64, 64, 64, 64), conv_stride=(5, 4, 4, 4), conv_kernel=(10, 8, 4, 4), feat_extract_norm="layer",
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, mask_time_prob=0.0,
    )  # fmt: skip
    return HFAudioBackbone(Wav2Vec2Model(config), name="demo-wav2vec2")


@_register("demo-bert")
def _demo_bert() -> Backbone:
    from transformers import BertConfig, BertModel

    tokenizer = _minilm_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=HEADS,
        intermediate_size=4 * WIDTH, max_position_embeddings=128,
    )  # fmt: skip
    return HFTextBackbone(
        BertModel(config, add_pooling_layer=False), Preprocessing(tokenizer=tokenizer), name="demo-bert"
    )
