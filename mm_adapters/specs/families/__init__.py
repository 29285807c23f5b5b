"""The built-in backbone families, one :class:`~mm_adapters.specs.family.Family` entry each."""

from . import hf_audio, hf_text, hf_vision, hf_whisper, open_clip, timm  # noqa: F401  (each module registers its families)
