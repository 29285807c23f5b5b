"""``preprocessing.json``: how a device turns raw samples into the graph's inputs, without Python.

Read from the export's ``task.json`` when it has one (what training used), else from the backbone. The tokenizer
of a Hugging Face text backbone is saved beside it as ``tokenizer.json`` (the ``tokenizers`` format that Rust, JS
and C++ runtimes read); a Whisper backbone's log-mel front end is described by its parameters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..backbones import Backbone
from .graphs import modality_of

PREPROCESSING_FILE = "preprocessing.json"
TOKENIZER_FILE = "tokenizer.json"
TASK_FILE = "task.json"
FIELDS = ("image_size", "image_mean", "image_std", "sample_rate", "normalize_audio", "max_length")


def read_task_json(folder: str | Path) -> dict[str, Any] | None:
    """An export folder's ``task.json`` (written by ``export_adapter``), or None when it has none."""
    path = Path(folder) / TASK_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def describe_preprocessing(backbone: Backbone, task: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """The ``preprocessing.json`` document (without the tokenizer file, which :func:`write_preprocessing` saves)."""
    saved = dict((task or {}).get("preprocessing") or {})
    found: dict[str, Any] = {}
    for name in FIELDS:
        value = saved.get(name)
        if value is None:
            value = getattr(backbone.preprocessing, name)
        found[name] = list(map(float, value)) if name in ("image_mean", "image_std") and value else value
    found["inputs"] = modality_of(backbone)
    found["image_crop"] = (
        kind == "retrieval"
    )  # the retrieval recipe resizes the shorter side and centre-crops
    if found["inputs"] == "log_mel":
        extractor = backbone.feature_extractor
        found["log_mel"] = {
            "feature_size": int(extractor.feature_size), "n_fft": int(extractor.n_fft),
            "hop_length": int(extractor.hop_length), "window_samples": int(backbone.window_samples),
            "window_frames": int(backbone.window_frames),
            "note": "Whisper log-mel (WhisperFeatureExtractor): log10 mel power, clamped to max - 8, (x + 4) / 4",
        }  # fmt: skip
    if found["inputs"] == "audio":
        found["normalize_audio"] = backbone.normalize_audio
    return found


def write_preprocessing(
    folder: Path, backbone: Backbone, task: Mapping[str, Any] | None, kind: str
) -> dict[str, Any]:
    document = describe_preprocessing(backbone, task, kind)
    tokenizer = backbone.tokenizer
    document["tokenizer"] = None
    if tokenizer is not None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            backend.save(str(folder / TOKENIZER_FILE))
            document["tokenizer"] = {"kind": "huggingface", "file": TOKENIZER_FILE,
                                     "pad_token_id": getattr(tokenizer, "pad_token_id", None)}  # fmt: skip
        elif hasattr(tokenizer, "context_length"):
            document["tokenizer"] = {"kind": "open_clip", "context_length": int(tokenizer.context_length)}
        else:
            document["tokenizer"] = {"kind": type(tokenizer).__name__}
    (folder / PREPROCESSING_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return document
