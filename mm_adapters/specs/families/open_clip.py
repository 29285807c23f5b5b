"""open_clip models. A tower built from another library (a timm ``visual.trunk``, a Hugging Face
``text.transformer``) is adapted through that library's family; a tower no family covers (ResNet, ConvNeXt) is left
out with a note, and the other tower is still adapted."""

from __future__ import annotations

import torch
from torch import nn

from ..base import BackboneSpec, SiteSpec, TowerSpec
from ..family import TINY, Demo, Example, Family, ModelSize, image_batch, seeded
from ..registry import register_family

# Attention is nn.MultiheadAttention, which does not call out_proj as a module: adapt the attention's output.
_BLOCK = dict(
    attn=SiteSpec(output="attn", norm="ln_1"),
    ffn=SiteSpec(output="mlp", norm="ln_2"),
    hidden_size="mlp.c_proj.out_features",
    norm_position="pre",
)
_VISION = TowerSpec(layers="visual.transformer.resblocks", **_BLOCK)
_TEXT = TowerSpec(layers="transformer.resblocks|text.transformer.resblocks", parallel_branch=False, **_BLOCK)
_DELEGATES = {"vision": "visual.trunk", "text": "text.transformer"}


def _clip_example() -> Example:
    def build(size: ModelSize = TINY, tokenizer=None, vocab_size=100, context_length=8, embed_dim=16):
        from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

        vision = CLIPVisionCfg(
            layers=size.layers, width=size.hidden, head_width=size.hidden // size.heads, patch_size=8,
            image_size=32, mlp_ratio=size.ffn / size.hidden,
        )  # fmt: skip
        text = CLIPTextCfg(
            context_length=context_length, vocab_size=vocab_size, width=size.hidden, heads=size.heads,
            layers=size.layers, mlp_ratio=size.ffn / size.hidden,
        )  # fmt: skip
        return CLIP(embed_dim=embed_dim, vision_cfg=vision, text_cfg=text).eval()

    def inputs(seed: int = 0) -> dict:
        batch = image_batch(seed)
        batch["text"] = torch.randint(1, 100, (2, 8), generator=seeded(seed + 1))
        return batch

    def run(m: nn.Module, b: dict) -> torch.Tensor:
        return torch.cat([m.encode_image(b["pixel_values"]), m.encode_text(b["text"])], dim=0)

    return Example(build, inputs, run)


register_family(
    Family(
        spec=BackboneSpec(
            family="open_clip",
            class_names=("CLIP", "CustomTextCLIP"),
            towers={"vision": _VISION, "text": _TEXT},
            delegates=_DELEGATES,
        ),
        wrapper="open_clip",
        examples={"open_clip": _clip_example()},
        demos=(
            Demo(
                "demo-clip",
                "open_clip",
                size=ModelSize(hidden=128, layers=4, heads=4, ffn=512),
                options=dict(vocab_size=49408, context_length=24, embed_dim=128),
            ),
        ),  # fmt: skip
    )
)

# CoCa adds a multimodal text decoder (self-attention and MLP per block; its cross-attention blocks are separate).
register_family(
    Family(
        spec=BackboneSpec(
            family="open_clip_coca",
            class_names=("CoCa",),
            towers={
                "vision": _VISION,
                "text": TowerSpec(layers="text.transformer.resblocks", parallel_branch=False, **_BLOCK),
                "decoder": TowerSpec(layers="text_decoder.resblocks", **_BLOCK),
            },
            delegates=_DELEGATES,
        ),
        wrapper="open_clip",
    )
)
