"""Shrinking configs for the sweep: hidden 32-64, 1-2 layers, tiny inputs, so that a model builds and runs in well
under a second on one CPU core. Only the sweep uses this; it changes sizes, never the block structure."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
from collections.abc import Iterator

WIDTH, HEADS, LAYERS = 64, 4, 2

_HF_SIZES = dict(
    hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
    intermediate_size=2 * WIDTH, embedding_size=WIDTH, projection_dim=WIDTH, projection_size=WIDTH,
    pooler_hidden_size=WIDTH, num_patches=16, hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    feat_proj_dropout=0.0, layerdrop=0.0, drop_path_rate=0.0, mask_time_prob=0.0, mask_ratio=0.0,
    num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4, image_size=32, patch_size=8, max_length=32,
    num_mel_bins=32, frequency_stride=8, time_stride=8, global_attn_every_n_layers=1, max_position_embeddings=128,
)  # fmt: skip
_HF_AUDIO = dict(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 4))
_HF_STAGES = dict(embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=4, patch_size=4)


def shrunk_hf_config(config):
    """A copy of a Hugging Face config with every size field it has made tiny (sub-configs too)."""
    config = copy.deepcopy(config)
    for name in ("text_config", "vision_config", "audio_config"):
        if getattr(config, name, None) is not None:
            setattr(config, name, shrunk_hf_config(getattr(config, name)))
    sizes = dict(_HF_SIZES)
    if hasattr(config, "conv_dim"):
        sizes.update(_HF_AUDIO, num_feat_extract_layers=2)
    if hasattr(config, "depths"):  # hierarchical (Swin): per-stage widths come from embed_dim
        sizes.update(_HF_STAGES)
    if hasattr(config, "squeeze_factor"):  # SEW: the squeeze must not outgrow the tiny input
        sizes["squeeze_factor"] = 1
    for key, value in sizes.items():
        if hasattr(config, key):
            setattr(config, key, value)
    vocab = getattr(config, "vocab_size", None)
    special = [
        getattr(config, k, None) for k in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id")
    ]
    if isinstance(vocab, int) and all(not isinstance(t, int) or t < 100 for t in special):
        config.vocab_size = 100
    if getattr(config, "model_type", "") == "modernbert":
        config.local_attention = 8
    return config


def shrunk_open_clip_config(config: dict) -> dict:
    """``vision_cfg`` / ``text_cfg`` / ``multimodal_cfg`` / ``embed_dim`` overrides for ``open_clip.create_model``."""
    vision = dict(config["vision_cfg"])
    if "timm_model_name" not in vision:
        if isinstance(vision.get("layers"), (tuple, list)):  # ModifiedResNet
            vision.update(layers=(1, 1, 1, 1), width=16, image_size=64)
        else:
            patch = int(vision.get("patch_size", 16))
            vision.update(layers=LAYERS, width=WIDTH, head_width=WIDTH // HEADS, image_size=patch * 4)
    else:
        vision["image_size"] = _timm_image_size(vision)
    text = dict(config["text_cfg"])
    if "hf_model_name" in text:
        text["hf_model_pretrained"] = False  # random weights from the (tiny) config
    else:
        text.update(
            width=WIDTH,
            heads=HEADS,
            layers=LAYERS,
            context_length=min(int(text.get("context_length", 77)), 16),
        )
    overrides = {"vision_cfg": vision, "text_cfg": text, "embed_dim": 32}
    if "multimodal_cfg" in config:
        context = text.get("context_length", 16)  # the decoder reads the text tower's tokens
        overrides["embed_dim"] = WIDTH  # CoCa's decoder works at the image embedding width
        overrides["multimodal_cfg"] = dict(
            config["multimodal_cfg"], width=WIDTH, heads=HEADS, layers=1, context_length=context
        )
    return overrides


_HF_TEXT_TYPES = (("xlm-roberta", "xlm-roberta"), ("roberta", "roberta"), ("mt5", "mt5"), ("nllb", "m2m_100"))


@contextlib.contextmanager
def tiny_hf_text_towers() -> Iterator[None]:
    """While active, open_clip's Hugging Face text towers are built from a tiny config of their model type instead
    of the hub's (which is not reachable offline)."""
    from open_clip import hf_model
    from transformers import AutoConfig

    original = hf_model.AutoConfig.from_pretrained

    def tiny(name, *args, **kwargs):
        model_type = next((t for key, t in _HF_TEXT_TYPES if key in str(name).lower()), None)
        if model_type is None:
            return original(name, *args, **kwargs)
        config = shrunk_hf_config(AutoConfig.for_model(model_type))
        for key in (
            "d_model",
            "d_ff",
            "num_layers",
            "num_heads",
            "encoder_layers",
            "encoder_attention_heads",
        ):
            if hasattr(config, key):  # T5 / M2M100 size names
                setattr(config, key, {"d_model": WIDTH, "d_ff": 2 * WIDTH, "num_heads": HEADS}.get(key, LAYERS)
                        if key != "encoder_attention_heads" else HEADS)  # fmt: skip
        if hasattr(config, "encoder_ffn_dim"):
            config.encoder_ffn_dim, config.decoder_ffn_dim, config.decoder_layers = 2 * WIDTH, 2 * WIDTH, 1
            config.decoder_attention_heads = HEADS
        config.max_position_embeddings = 514  # RoBERTa's positions start after the padding index
        if hasattr(config, "d_kv"):
            config.d_kv = WIDTH // HEADS
        return config

    hf_model.AutoConfig.from_pretrained = tiny
    try:
        yield
    finally:
        hf_model.AutoConfig.from_pretrained = original


def _timm_image_size(vision: dict) -> int:
    size = vision.get("image_size", 224)
    return size if isinstance(size, int) else int(size[0])


# -- timm ------------------------------------------------------------------------------------------------------------
_TIMM_INTS = dict(embed_dim=WIDTH, depth=LAYERS, num_heads=HEADS, mlp_ratio=2.0)


def _init_parameters(model_cls) -> dict:
    """The keyword parameters of the model's constructor (LeViT's ``LevitDistilled`` passes ``*args, **kwargs`` on
    to its base class: look there)."""
    for cls in model_cls.__mro__:
        parameters = inspect.signature(cls.__init__).parameters
        named = [p for p in parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if len(named) > 1:
            return dict(parameters)
    return {}


def _stage_widths(stages: int) -> tuple[int, ...]:
    return tuple(32 * 2**i for i in range(stages))


def _shrunk_depth(value):
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], (tuple, list)):
        return (
            tuple(min(1, depth) for depth in value[0]),
        )  # CrossViT: one multi-scale block, 1 layer per branch
    return (1,) * len(value)


def _shrunk_cfg(cfg):
    """A model config dataclass with one block per stage (MaxxVitCfg, MultiScaleVitCfg, ViTamin's VitCfg) or, for a
    single stack (NaFlexVitCfg), the shrunk width, depth and heads."""
    if not hasattr(cfg, "depths"):
        return dataclasses.replace(cfg, **{k: v for k, v in _TIMM_INTS.items() if hasattr(cfg, k)})
    stages = len(cfg.depths)
    changes = {"depths": (1,) * stages}
    if hasattr(cfg, "embed_dim"):
        changes["embed_dim"] = _stage_widths(stages) if isinstance(cfg.embed_dim, (tuple, list)) else 32
    if isinstance(
        getattr(cfg, "num_heads", None), (tuple, list)
    ):  # MultiScaleVitCfg: per stage, 32 wide each
        changes["num_heads"] = tuple(2**i for i in range(stages))
    elif isinstance(getattr(cfg, "num_heads", None), int):
        changes["num_heads"] = 1
    if isinstance(getattr(cfg, "stem_width", None), int):
        changes["stem_width"] = 32
    elif isinstance(getattr(cfg, "stem_width", None), (tuple, list)):
        changes["stem_width"] = (16, 32)
    return dataclasses.replace(cfg, **changes)


def _shrunk_timm_kwargs(model_cls, kwargs: dict, small_images: bool = False, widths: bool = True) -> dict:
    """``kwargs`` with depths (and, with ``widths``, widths and heads) made tiny where the constructor takes them."""
    accepted = _init_parameters(model_cls)

    def current(key):
        return shrunk.get(key, accepted[key].default if key in accepted else None)

    shrunk = dict(kwargs)
    if small_images and "img_size" in accepted and not isinstance(kwargs.get("img_size"), (tuple, list)):
        shrunk["img_size"] = 64
    for key, value in _TIMM_INTS.items():
        if key in accepted and not isinstance(shrunk.get(key), (tuple, list)) and (widths or key == "depth"):
            shrunk[key] = value
    stages = None
    for key in ("depths", "stages", "layers", "embed_dims", "embed_dim", "num_heads", "dims", "widths"):
        if isinstance(current(key), (tuple, list)):
            stages = len(current(key))
    if stages:
        for key in ("depths", "depth", "stages", "layers"):  # Hiera's ``stages``, VOLO's ``layers``: depths
            if key in accepted and isinstance(current(key), (tuple, list)):
                shrunk[key] = _shrunk_depth(current(key))
        for key in ("embed_dims", "embed_dim", "dims", "widths"):
            if widths and key in accepted and isinstance(current(key), (tuple, list)):
                shrunk[key] = _stage_widths(len(current(key)))
        if widths and "num_heads" in accepted and isinstance(current("num_heads"), (tuple, list)):
            shrunk["num_heads"] = tuple(2 * 2**i for i in range(len(current("num_heads"))))
    for key in ("cfg", "model_cfg"):
        cfg = shrunk.get(key)
        if dataclasses.is_dataclass(cfg) and (hasattr(cfg, "depths") or hasattr(cfg, "depth")) and widths:
            shrunk[key] = _shrunk_cfg(cfg)
    return shrunk


@contextlib.contextmanager
def tiny_timm_building(small_images: bool = False, widths: bool = True) -> Iterator[None]:
    """While active, timm builds every model with its widths (unless ``widths`` is False) and depths shrunk
    (falling back to the full size when the shrunk arguments do not fit the model)."""
    from timm.models import _builder

    original = _builder.build_model_with_cfg

    def build(model_cls, variant, pretrained, *args, **kwargs):
        # shrunk widths (unless told not to) and depths; where a prebuilt stem fixes the width (ViT-MCi), shrunk
        # depths; else full size
        for shrink_widths in (True, False) if widths else (False,):
            try:
                shrunk = _shrunk_timm_kwargs(model_cls, kwargs, small_images, shrink_widths)
                return original(model_cls, variant, pretrained, *args, **shrunk)
            except Exception:  # noqa: BLE001  (sizes that do not fit this model: try the next)
                continue
        return original(model_cls, variant, pretrained, *args, **kwargs)

    _builder.build_model_with_cfg = build
    patched = _patch_model_modules(original, build)
    with _tiny_prebuilt_stems():
        try:
            yield
        finally:
            _builder.build_model_with_cfg = original
            for module in patched:
                module.build_model_with_cfg = original


@contextlib.contextmanager
def _tiny_prebuilt_stems() -> Iterator[None]:
    """ViTamin builds its convolutional stem before ``build_model_with_cfg`` sees any size: shrink the stem's config
    too, ending at the shrunk width."""
    from timm.models import vitamin

    original = vitamin._create_vitamin

    def create(variant, pretrained=False, embed_cfg=None, **kwargs):
        stages = len(embed_cfg.embed_dim)
        embed_cfg = dataclasses.replace(
            _shrunk_cfg(embed_cfg), embed_dim=_stage_widths(stages - 1) + (WIDTH,)
        )
        return original(variant, pretrained, embed_cfg=embed_cfg, **kwargs)

    vitamin._create_vitamin = create
    try:
        yield
    finally:
        vitamin._create_vitamin = original


def _patch_model_modules(original, replacement) -> list:
    """timm model files import ``build_model_with_cfg`` by name: patch each loaded one."""
    import sys

    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith("timm.models.") and getattr(module, "build_model_with_cfg", None) is original:
            module.build_model_with_cfg = replacement
            patched.append(module)
    return patched
