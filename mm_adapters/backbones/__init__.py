"""Task-facing backbone wrappers and loaders.

``load_backbone(name)`` returns a :class:`Backbone`: pooled features (``forward``), retrieval embeddings
(``encode_image``, ``encode_text``, ``logit_scale``) or frame features (``frames``), plus the preprocessing the
data code needs (``image_size``, ``image_mean``, ``image_std``, ``sample_rate``, ``tokenizer``). The raw model is
``backbone.model``; pass that to :func:`mm_adapters.add_adapter`.
"""

from . import audio, clip, text, vision, whisper  # noqa: F401  (register the family wrappers)
from .audio import HFAudioBackbone
from .base import Backbone, Preprocessing
from .clip import HFCLIPBackbone, OpenCLIPBackbone
from .demo import DEMO_BACKBONES, demo_backbone
from .hub import BackboneNotFoundError, hub_reachable, offline
from .loading import backbone_available, load_backbone
from .minilm import minilm_path
from .registry import BACKBONE_WRAPPERS, register_wrapper, wrap_backbone
from .text import HFTextBackbone
from .tokenizers import OpenCLIPTextTokenizer
from .vision import HFViTBackbone, TimmViTBackbone
from .whisper import HFWhisperBackbone, load_whisper_seq2seq, whisper_folder, windowed_encoder

__all__ = [
    "BACKBONE_WRAPPERS",
    "DEMO_BACKBONES",
    "Backbone",
    "BackboneNotFoundError",
    "HFAudioBackbone",
    "HFCLIPBackbone",
    "HFTextBackbone",
    "HFViTBackbone",
    "HFWhisperBackbone",
    "OpenCLIPBackbone",
    "OpenCLIPTextTokenizer",
    "Preprocessing",
    "TimmViTBackbone",
    "backbone_available",
    "demo_backbone",
    "hub_reachable",
    "load_backbone",
    "load_whisper_seq2seq",
    "minilm_path",
    "offline",
    "register_wrapper",
    "whisper_folder",
    "windowed_encoder",
    "wrap_backbone",
]
