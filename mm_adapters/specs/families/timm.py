"""timm transformer families. Matching is by class, so subclasses (``VisionTransformerDistilled``) are covered."""

from __future__ import annotations

from torch import nn

from ..base import BackboneSpec, SiteSpec, TowerSpec
from ..family import TINY, Demo, Example, Family, ModelSize, image_batch
from ..registry import register_family


def _features(model: nn.Module, batch: dict):
    return model.forward_features(batch["pixel_values"])


def _timm_example(name: str, **overrides) -> Example:
    """timm's ``@register_model`` name, shrunk with the given (or the size's) keyword arguments."""

    def build(size: ModelSize = TINY, tokenizer=None):
        import timm

        kwargs = dict(
            img_size=32, patch_size=8, embed_dim=size.hidden, depth=size.layers, num_heads=size.heads,
            mlp_ratio=size.ffn / size.hidden,
        )  # fmt: skip
        merged = {
            key: value for key, value in {**kwargs, **overrides}.items() if value is not None
        }  # None: drop it
        return timm.create_model(name, pretrained=False, num_classes=0, **merged).eval()

    return Example(build, image_batch, _features)


_PRE = dict(norm_position="pre")
_NO_VIT_KWARGS = dict(
    patch_size=None, embed_dim=None, depth=None, num_heads=None, mlp_ratio=None
)  # models configured by their own cfg


def _pre_unless_res_post(block: nn.Module) -> str:
    """timm blocks are pre-LN, except the res-post-norm ones (``ResPostBlock``, ``EvaBlockPostNorm``, Swin-v2), which
    normalise each sublayer output (``norm1``, ``norm2``) before its residual add."""
    name = type(block).__name__
    return "res_post" if "Post" in name or "V2" in name else "pre"


# VisionTransformer (and subclasses), Eva and Beit blocks: ``attn`` and ``mlp`` (Mlp, GluMlp, SwiGLU: the hidden size
# comes from their last Linear). Parallel blocks list their branches (``attns``/``ffns``; the first is adapted).
register_family(
    Family(
        spec=BackboneSpec(
            family="timm_vit",
            class_names=("VisionTransformer", "Eva", "Beit", "VisionTransformerRelPos"),
            towers={
                "vision": TowerSpec(
                    layers="blocks",
                    attn=SiteSpec(output="attn|attns.0|attn_out_proj", norm="norm1|attns.0.norm|in_norm"),
                    ffn=SiteSpec(output="mlp|ffns.0|mlp_out_proj", norm="norm2|ffns.0.norm|in_norm"),
                    norm_position=_pre_unless_res_post,
                )
            },
        ),
        wrapper="timm_vit",
        examples={
            "timm_vit": _timm_example("vit_tiny_patch16_224"),
            "timm_eva": _timm_example("eva02_tiny_patch14_224", patch_size=8),
        },
        demos=(Demo("demo-timm-vit", "timm_vit"),),
    )
)

# Swin / Swin-v2: stages of blocks with per-stage widths.
register_family(
    Family(
        spec=BackboneSpec(
            family="timm_swin",
            class_names=("SwinTransformer", "SwinTransformerV2", "SwinTransformerV2Cr"),
            towers={
                "vision": TowerSpec(
                    layers="layers.*.blocks|stages.*.blocks",
                    attn=SiteSpec(output="attn", norm="norm1"),
                    ffn=SiteSpec(output="mlp", norm="norm2"),
                    norm_position=_pre_unless_res_post,
                )
            },
        ),
        wrapper="timm_vit",
        examples={
            "timm_swin": _timm_example(
                "swin_tiny_patch4_window7_224",
                patch_size=4,
                embed_dim=16,
                depths=(1, 1),
                num_heads=(2, 4),
                window_size=4,
                depth=None,
                mlp_ratio=2.0,
            )  # fmt: skip
        },
    )
)


# CaiT and XCiT: self-attention blocks, then class-attention blocks that update the class token only (their attention
# LayerNorm reads the class token and the patches together, so it is not the stream's: no attention norm there).
# XCiT's class-attention FFN adds its output to its own (already normalised) input: res-post-norm with no norm.
def _class_attention_family(
    family: str, class_name: str, class_blocks: str, class_ffn_norm: str | None
) -> Family:
    return Family(
        spec=BackboneSpec(
            family=family,
            class_names=(class_name,),
            towers={
                "vision": TowerSpec(
                    layers="blocks",
                    attn=SiteSpec(output="attn", norm="norm1"),
                    ffn=SiteSpec(output="mlp", norm="norm2"),
                    **_PRE,
                ),
                "class_attn": TowerSpec(
                    layers=class_blocks,
                    attn=SiteSpec(output="attn"),
                    ffn=SiteSpec(output="mlp", norm=class_ffn_norm),
                    norm_position="pre" if class_ffn_norm else "res_post",
                ),
            },
        ),
        wrapper="timm_vit",
    )


register_family(_class_attention_family("timm_cait", "Cait", "blocks_token_only", class_ffn_norm="norm2"))
register_family(_class_attention_family("timm_xcit", "Xcit", "cls_attn_blocks", class_ffn_norm=None))

# MaxxVit (CoAtNet, MaxViT, MaxxViT): stages mix convolution blocks (MbConv, ConvNeXt) with pre-LN transformer
# blocks: CoAtNet's whole-map ``TransformerBlock2d`` (NCHW; a stage's first one downsamples, adding its attention to
# ``shortcut(x)``) and MaxViT's window and grid partition units inside each ``MaxxVitBlock`` (``PartitionAttentionCl``,
# channels-last, or ``PartitionAttention2d``, NCHW). The NCHW blocks' FFN is a ``ConvMlp`` (1x1 convolutions). The
# partition units run their attention on windows and put them back in place before the layer scale ``ls1`` (an
# Identity without ``init_values``), so the attention site is ``ls1``: the first module whose output is laid out as
# the stream it is added to.
# ``ParallelPartitionAttention`` (maxvit_tiny_pm) runs window and grid attention side by side on half the channels
# each and concatenates them before ``ls1``, so the same sites fit it.
_MAXXVIT_BLOCKS = (
    "TransformerBlock2d", "PartitionAttentionCl", "PartitionAttention2d", "ParallelPartitionAttention"
)  # fmt: skip

register_family(
    Family(
        spec=BackboneSpec(
            family="timm_maxvit",
            class_names=("MaxxVit",),
            towers={
                "vision": TowerSpec(
                    layers="stages",
                    block_types=_MAXXVIT_BLOCKS,
                    attn=SiteSpec(output="ls1", norm="norm1", residual="shortcut"),
                    ffn=SiteSpec(output="mlp", norm="norm2"),
                    hidden_size="mlp.fc2.out_features|mlp.fc2.out_channels",
                    channels_first=lambda block: type(block).__name__.endswith("2d"),
                    **_PRE,
                )
            },
        ),
        wrapper="timm_vit",
        examples={
            "timm_coatnet": _timm_example("test_coatnet", **_NO_VIT_KWARGS),
            "timm_maxvit": _timm_example("test_maxvit", **_NO_VIT_KWARGS),
        },
    )
)


def _tiny_mvitv2(size: ModelSize, expand_attn: bool = False) -> nn.Module:
    """Two stages (the second's first block pools); ``expand_attn=False`` widens in the FFN, timm's other layout."""
    from timm.models.mvitv2 import MultiScaleVit, MultiScaleVitCfg

    cfg = MultiScaleVitCfg(depths=(1, 2), embed_dim=size.hidden // 2, num_heads=1, expand_attn=expand_attn)
    return MultiScaleVit(cfg, img_size=32, num_classes=0).eval()


# MViT-v2: pre-LN blocks in stages; a stage's first block pools the queries (and its attention shortcut) and the
# width grows from ``dim`` to ``dim_out`` in the attention (``shortcut_proj_attn``) or in the FFN
# (``shortcut_proj_mlp``, whose output is then the FFN's residual), so the attention site names its own width.
register_family(
    Family(
        spec=BackboneSpec(
            family="timm_mvitv2",
            class_names=("MultiScaleVit",),
            towers={
                "vision": TowerSpec(
                    layers="stages.*.blocks",
                    attn=SiteSpec(
                        output="attn",
                        norm="norm1",
                        residual="shortcut_proj_attn",
                        untapped_residual="shortcut_pool_attn",
                        hidden_size="attn.proj.out_features",
                    ),
                    ffn=SiteSpec(output="mlp", norm="norm2", residual="shortcut_proj_mlp"),
                    **_PRE,
                )
            },
        ),
        wrapper="timm_vit",
        examples={
            "timm_mvitv2": Example(
                lambda size=TINY, tokenizer=None: _tiny_mvitv2(size), image_batch, _features
            )
        },
    )
)
