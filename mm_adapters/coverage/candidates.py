"""What the sweep builds: every open_clip config, names from every timm architecture module, and every Hugging Face
model type with a base model class (base model and one task head), all shrunk hard and with random weights, offline."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .hf_population import PARAMETER_LIMIT, build_hf, hf_names, run_hf
from .shrink import shrunk_open_clip_config, tiny_hf_text_towers, tiny_timm_building
from .weights import as_trained

SEED = 0


@dataclass(frozen=True)
class Candidate:
    library: str
    name: str
    build: Callable[[], nn.Module]
    run: Callable[[nn.Module], torch.Tensor]
    group: str = ""
    """What the coverage figures count: the Hugging Face model type, the timm module, the open_clip config."""


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


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
        yield named_candidate("open_clip", name)


def _build_open_clip(name: str) -> nn.Module:
    import open_clip

    overrides = shrunk_open_clip_config(open_clip.get_model_config(name))
    with tiny_timm_building(), tiny_hf_text_towers():
        torch.manual_seed(SEED)
        model = as_trained(open_clip.create_model(name, pretrained=None, **overrides))
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
NAMES_PER_MODULE = 2
"""timm names swept per architecture module (spread over the module's registered names; every module is swept)."""


def timm_module(name: str) -> str:
    from timm.models._registry import _model_to_module

    return _model_to_module.get(name, "").rsplit(".", 1)[-1]


def timm_population() -> dict[str, list[str]]:
    """Every registered timm name, by architecture module."""
    import timm

    by_module: dict[str, list[str]] = {}
    for name in timm.list_models():
        by_module.setdefault(timm_module(name), []).append(name)
    return by_module


def timm_candidates(names_per_module: int = NAMES_PER_MODULE) -> Iterator[Candidate]:
    for names in timm_population().values():
        step = max(1, len(names) // names_per_module)
        for name in names[::step][:names_per_module]:
            yield named_candidate("timm", name)


def _build_timm(name: str) -> nn.Module:
    """The smallest model that builds and runs: shrunk widths, depths and (where the model takes it) image size;
    then its own image size; then its own widths (some blocks derive their shapes from them); then its own size."""
    import timm

    tiers = ((True, True), (False, True), (False, False), None)
    for tier, sizes in enumerate(tiers):
        try:
            with tiny_timm_building(*sizes) if sizes else contextlib.nullcontext():
                _within_parameter_limit(lambda: timm.create_model(name, pretrained=False, num_classes=0))
                torch.manual_seed(SEED)
                model = timm.create_model(name, pretrained=False, num_classes=0).eval().requires_grad_(False)
                as_trained(model)
            return _with_input_size(model, small=tier == 0)
        except Exception:  # noqa: BLE001
            if tier == len(tiers) - 1:
                raise
    raise AssertionError("unreachable")


def _within_parameter_limit(create: Callable[[], nn.Module]) -> None:
    """Raise when the model ``create`` builds (on the meta device: no memory, no init) is over the sweep's limit."""
    try:
        with torch.device("meta"):
            count = sum(p.numel() for p in create().parameters())
    except Exception:  # noqa: BLE001  (a model that cannot be built on the meta device: build it for real)
        return
    if count > PARAMETER_LIMIT:
        raise ValueError(f"{count:,} parameters after shrinking (limit {PARAMETER_LIMIT:,})")


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
"""The Hugging Face model types issue 13 lists (still reported as a figure of their own)."""


def hf_candidates(types: tuple[str, ...] | None = None) -> Iterator[Candidate]:
    """Every model type with a base model class (or ``types``): the base model and one task head."""
    for name in hf_names(types):
        yield named_candidate("transformers", name)


def named_candidate(library: str, name: str) -> Candidate:
    """One sweep candidate by name (``transformers`` names are ``model_type`` or ``model_type:Head``)."""
    if library == "open_clip":
        return Candidate(library, name, lambda: _build_open_clip(name), _run_open_clip, name)
    if library == "timm":
        return Candidate(library, name, lambda: _build_timm(name), _run_timm, timm_module(name))
    model_type, _, head = name.partition(":")
    return Candidate(library, name, lambda: build_hf(model_type, head), run_hf, model_type)


def candidates(libraries: tuple[str, ...] = ("open_clip", "timm", "transformers")) -> Iterator[Candidate]:
    sources = {"open_clip": open_clip_candidates, "timm": timm_candidates, "transformers": hf_candidates}
    for library in libraries:
        yield from sources[library]()
