"""What the sweep builds: every open_clip config, a few names of every timm transformer module, and Hugging Face
encoder model types (base model and common task heads), all shrunk hard and with random weights, offline."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .shrink import shrunk_hf_config, shrunk_open_clip_config, tiny_hf_text_towers, tiny_timm_building

SEED = 0


@dataclass(frozen=True)
class Candidate:
    library: str
    name: str
    build: Callable[[], nn.Module]
    run: Callable[[nn.Module], torch.Tensor]


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


def _without_zero_norms(model: nn.Module) -> nn.Module:
    """Random weights as training leaves them: a norm initialised to zero (timm's Swin-v2 post-norms start at 0 so
    each block starts as the identity) outputs zeros, and an adapter reading zeros gets no gradient in the check."""
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if "Norm" in type(module).__name__ and isinstance(weight, nn.Parameter) and not weight.any():
                weight.fill_(1.0)
    return model


def _first_tensor(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "last_hidden_state") and output.last_hidden_state is not None:
        return output.last_hidden_state
    values = output.to_tuple() if hasattr(output, "to_tuple") else output
    if isinstance(values, dict):
        values = list(values.values())
    for value in values:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value
    raise TypeError(f"No tensor in the model output {type(output).__name__}")


# -- open_clip -------------------------------------------------------------------------------------------------------
def open_clip_candidates() -> Iterator[Candidate]:
    import open_clip

    for name in open_clip.list_models():
        yield Candidate("open_clip", name, lambda name=name: _build_open_clip(name), _run_open_clip)


def _build_open_clip(name: str) -> nn.Module:
    import open_clip

    overrides = shrunk_open_clip_config(open_clip.get_model_config(name))
    with tiny_timm_building(), tiny_hf_text_towers():
        torch.manual_seed(SEED)
        model = _without_zero_norms(open_clip.create_model(name, pretrained=None, **overrides))
        decoder = getattr(model, "text_decoder", None)
        if getattr(decoder, "text_projection", None) is not None:
            # CoCa's decoder leaves text_projection as torch.empty (its init_parameters is never called)
            nn.init.normal_(decoder.text_projection, std=decoder.text_projection.shape[0] ** -0.5)
    model.eval().requires_grad_(False)
    model._sweep_image_size = overrides["vision_cfg"].get("image_size", 224)
    model._sweep_context_length = int(getattr(model, "context_length", 8) or 8)
    return model


def _run_open_clip(model: nn.Module) -> torch.Tensor:
    size = model._sweep_image_size
    size = size if isinstance(size, int) else size[0]
    images = torch.randn(2, 3, size, size, generator=_generator())
    vocab = int(getattr(model, "vocab_size", 0) or 100)
    text = torch.randint(1, min(vocab, 1000), (2, model._sweep_context_length), generator=_generator())
    parts = [model.encode_image(images), model.encode_text(text)]
    if hasattr(model, "text_decoder"):  # CoCa: also run the multimodal decoder
        parts.append(model(images, text)["logits"].flatten(1)[:, :16])
    return torch.cat([p.flatten(1) for p in parts], dim=1)


# -- timm ------------------------------------------------------------------------------------------------------------
TIMM_MODULES = (
    "vision_transformer", "vision_transformer_hybrid", "vision_transformer_relpos", "vision_transformer_sam",
    "deit", "eva", "beit", "swin_transformer", "swin_transformer_v2", "swin_transformer_v2_cr", "cait", "xcit",
    "maxxvit", "levit", "pvt_v2", "twins", "crossvit", "mvitv2", "hiera", "tnt", "pit", "volo", "davit",
    "efficientformer", "efficientformer_v2", "coat", "convit", "nest", "sequencer", "focalnet", "tiny_vit",
    "fastvit", "gcvit", "edgenext", "mobilevit", "naflexvit", "vitamin", "nextvit", "hieradet_sam2",
)  # fmt: skip
"""timm modules whose models have attention blocks (a few names of each are swept; HGNet and RDNet, convolutional
networks with channel attention only, are not transformers)."""
NAMES_PER_MODULE = 3


def timm_candidates(names_per_module: int = NAMES_PER_MODULE) -> Iterator[Candidate]:
    import timm
    from timm.models._registry import _model_to_module

    by_module: dict[str, list[str]] = {}
    for name in timm.list_models():
        module = _model_to_module.get(name, "").rsplit(".", 1)[-1]
        if module in TIMM_MODULES:
            by_module.setdefault(module, []).append(name)
    for module in TIMM_MODULES:
        names = by_module.get(module, [])
        step = max(1, len(names) // names_per_module)
        for name in names[::step][:names_per_module]:
            yield Candidate("timm", name, lambda name=name: _build_timm(name), _run_timm)


def _build_timm(name: str) -> nn.Module:
    """The smallest model that builds and runs: shrunk widths, depths and (where the model takes it) image size;
    then its own image size; then its own widths (some blocks derive their shapes from them); then its own size."""
    import timm

    tiers = ((True, True), (False, True), (False, False), None)
    for tier, sizes in enumerate(tiers):
        try:
            with tiny_timm_building(*sizes) if sizes else contextlib.nullcontext():
                torch.manual_seed(SEED)
                model = timm.create_model(name, pretrained=False, num_classes=0).eval().requires_grad_(False)
                _without_zero_norms(model)
            return _with_input_size(model, small=tier == 0)
        except Exception:  # noqa: BLE001
            if tier == len(tiers) - 1:
                raise
    raise AssertionError("unreachable")


def _with_input_size(model: nn.Module, small: bool) -> nn.Module:
    """The model, run once on the smallest images it takes: 64 px where its size is not fixed (SAM2's Hiera would
    run at 1024), else its own."""
    for side in (64, None) if small else (None,):
        model._sweep_side = side
        try:
            with torch.no_grad():
                _run_timm(model)
            return model
        except Exception:  # noqa: BLE001
            if side is None:
                raise
    raise AssertionError("unreachable")


def _run_timm(model: nn.Module) -> torch.Tensor:
    size = (
        model.pretrained_cfg.get("input_size", (3, 224, 224))
        if hasattr(model, "pretrained_cfg")
        else (3, 224, 224)
    )
    built = getattr(getattr(model, "patch_embed", None), "img_size", None)
    height, width = (built if built else size[1:]) if not isinstance(built, int) else (built, built)
    if getattr(model, "_sweep_side", None):
        height = width = model._sweep_side
    images = torch.randn(2, size[0], int(height), int(width), generator=_generator())
    return _first_tensor(model.forward_features(images))


# -- transformers ----------------------------------------------------------------------------------------------------
HF_LISTED = (
    "dinov2", "dinov2_with_registers", "siglip", "siglip2", "beit", "data2vec-vision", "vit_mae", "vit_msn", "deit",
    "swin", "swinv2", "audio-spectrogram-transformer", "wav2vec2-conformer", "sew", "sew-d", "unispeech",
    "unispeech-sat", "distilbert", "albert", "deberta", "deberta-v2", "mpnet", "modernbert", "xlm-roberta-xl",
)  # fmt: skip
"""The Hugging Face model types issue 13 lists."""
HF_BEFORE = (
    "bert", "roberta", "xlm-roberta", "camembert", "electra", "vit", "clip", "wav2vec2", "hubert", "wavlm",
    "data2vec-audio",
)  # fmt: skip
HF_MORE = ("data2vec-text", "ernie", "roformer", "megatron-bert", "xmod", "rembert", "roberta-prelayernorm")
HF_TYPES = HF_BEFORE + HF_LISTED + HF_MORE
HEADS = {
    "text": ("AutoModelForSequenceClassification",),
    "image": ("AutoModelForImageClassification",),
    "audio": ("AutoModelForCTC", "AutoModelForAudioClassification"),
}


def hf_candidates(types: tuple[str, ...] = HF_TYPES) -> Iterator[Candidate]:
    for model_type in types:
        yield Candidate("transformers", model_type, lambda t=model_type: _build_hf(t, "AutoModel"), _run_hf)
        for head in HEADS.get(_modality(model_type), ()):
            if _has_head(model_type, head):
                name = f"{model_type}:{head.removeprefix('AutoModelFor')}"
                yield Candidate("transformers", name, lambda t=model_type, h=head: _build_hf(t, h), _run_hf)
                break


def _modality(model_type: str) -> str:
    import transformers

    config = transformers.AutoConfig.for_model(model_type)
    if hasattr(config, "vision_config") and hasattr(config, "text_config"):
        return "image_text"
    if hasattr(config, "conv_dim") or hasattr(config, "num_mel_bins"):
        return "audio"
    if hasattr(config, "image_size"):
        return "image"
    return "text"


def _has_head(model_type: str, head: str) -> bool:
    import transformers

    config_class = type(transformers.AutoConfig.for_model(model_type))
    return config_class in getattr(transformers, head)._model_mapping


def _build_hf(model_type: str, auto_class: str) -> nn.Module:
    import transformers

    config = shrunk_hf_config(transformers.AutoConfig.for_model(model_type))
    if auto_class == "AutoModelForCTC" and getattr(config, "vocab_size", None) is None:
        config.vocab_size = 32  # wav2vec2-conformer's config has no CTC vocabulary of its own
    auto = getattr(transformers, auto_class)
    model_class = auto._model_mapping[type(config)]
    if isinstance(model_class, (tuple, list)):  # DeiT: the plain head, not the one with a distillation token
        model_class = model_class[0]
    torch.manual_seed(SEED)
    model = model_class._from_config(config)
    if hasattr(model, "set_default_language"):  # X-MOD: one language adapter per batch
        model.set_default_language(next(iter(config.languages)))
    return model.eval().requires_grad_(False)


def _run_hf(model: nn.Module) -> torch.Tensor:
    config = model.config
    accepted = inspect.signature(model.forward).parameters
    batch: dict[str, torch.Tensor] = {}
    if "input_ids" in accepted:
        text = getattr(config, "text_config", config)
        vocab = int(getattr(text, "vocab_size", 100) or 100)
        batch["input_ids"] = torch.randint(5, min(vocab, 100), (2, 8), generator=_generator())
    vision = getattr(config, "vision_config", config)
    if "spatial_shapes" in accepted:  # SigLIP2: patchified pixels, a patch mask and the patch grid per image
        patches, side = vision.num_patches, int(vision.num_patches**0.5)
        depth = vision.num_channels * vision.patch_size**2
        batch["pixel_values"] = torch.randn(2, patches, depth, generator=_generator())
        batch["pixel_attention_mask"] = torch.ones(2, patches, dtype=torch.long)
        batch["spatial_shapes"] = torch.tensor([[side, side]] * 2)
    elif "pixel_values" in accepted:
        size = vision.image_size if isinstance(vision.image_size, int) else vision.image_size[0]
        batch["pixel_values"] = torch.randn(
            2, getattr(vision, "num_channels", 3), size, size, generator=_generator()
        )
    if "input_values" in accepted:
        if hasattr(config, "num_mel_bins"):  # spectrogram transformer
            shape = (2, config.max_length, config.num_mel_bins)
        else:
            shape = (2, 1600)
        batch["input_values"] = torch.randn(*shape, generator=_generator())
    if "noise" in accepted:  # ViT-MAE shuffles patches by this noise: fix it
        batch["noise"] = torch.rand(2, (vision.image_size // vision.patch_size) ** 2, generator=_generator())
    return _first_tensor(model(**batch))


def named_candidate(library: str, name: str) -> Candidate:
    """One sweep candidate by name (``transformers`` names are ``model_type`` or ``model_type:Head``)."""
    if library == "open_clip":
        return Candidate(library, name, lambda: _build_open_clip(name), _run_open_clip)
    if library == "timm":
        return Candidate(library, name, lambda: _build_timm(name), _run_timm)
    model_type, _, head = name.partition(":")
    auto_class = f"AutoModelFor{head}" if head else "AutoModel"
    return Candidate(library, name, lambda: _build_hf(model_type, auto_class), _run_hf)


def candidates(libraries: tuple[str, ...] = ("open_clip", "timm", "transformers")) -> Iterator[Candidate]:
    sources = {"open_clip": open_clip_candidates, "timm": timm_candidates, "transformers": hf_candidates}
    for library in libraries:
        yield from sources[library]()
