"""Saving and loading through the registry: the one body behind ``save_adapter`` / ``save_fusion`` (the format a
user names) and ``load_adapter`` / ``load_fusion`` (the format a folder, or a hub id's snapshot, is detected as)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .hub import resolve_folder
from .registry import detect_format, format_named


def save_in_format(
    kind: str, format: str, model: Any, name: str, directory: str | os.PathLike, **options
) -> Path:
    """Save ``name`` of ``kind`` (``"adapter"``, ``"fusion"``) with the registered format called ``format``."""
    try:
        file_format = format_named(kind, format)
    except ValueError as error:
        raise ValueError(f"format: {error}") from None
    return file_format.save(model, name, directory, **options)


def load_detected(kind: str, model: Any, directory: str | os.PathLike, name: str | None, **options) -> str:
    """Load a ``kind`` folder (or hub id) with whichever registered format recognises it; returns its name."""
    folder = resolve_folder(directory, kind)
    return detect_format(folder, kind).load(model, folder, name, **options)
