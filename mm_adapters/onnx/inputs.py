"""Raw samples -> graph inputs, from ``preprocessing.json`` alone (the same steps the training data code runs).

Texts go through ``tokenizer.json`` (the ``tokenizers`` library), images through the data code's
:class:`~mm_adapters.data.images.ImageTransform`, waveforms through its per-clip normalisation and padding, and
Whisper clips through ``WhisperFeatureExtractor`` with the saved window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def prepare_inputs(
    folder: Path, preprocessing: Mapping[str, Any], samples: Sequence[Any], graph: str | None = None
) -> dict[str, np.ndarray]:
    """``samples`` are texts (``graph="text"`` or a text folder), images (PIL, paths, arrays) or 1-D
    waveforms already at ``preprocessing["sample_rate"]``."""
    if not samples:
        raise ValueError("prepare needs at least one sample.")
    kind = "text" if graph == "text" else "image" if graph == "image" else preprocessing["inputs"]
    if kind == "text":
        return _texts(folder, preprocessing, [str(s) for s in samples])
    if kind == "image":
        return _images(preprocessing, samples)
    if kind == "audio":
        return _waveforms(preprocessing, samples)
    if kind == "log_mel":
        return _log_mel(preprocessing, samples)
    raise ValueError(f"preprocessing.json names inputs {kind!r}; expected text, image, audio or log_mel.")


def _texts(folder: Path, preprocessing: Mapping[str, Any], texts: list[str]) -> dict[str, np.ndarray]:
    tokenizer = preprocessing.get("tokenizer") or {}
    max_length = preprocessing.get("max_length")
    if tokenizer.get("kind") == "open_clip":
        from open_clip.tokenizer import SimpleTokenizer

        ids = SimpleTokenizer()(texts, context_length=tokenizer["context_length"])
        return {"input_ids": ids.numpy().astype(np.int64)}
    if tokenizer.get("kind") != "huggingface":
        raise ValueError(
            f"{folder} has no tokenizer.json; tokenize the texts yourself (input_ids, attention_mask)."
        )
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(folder / tokenizer["file"]))
    if max_length:
        backend.enable_truncation(int(max_length))
    backend.enable_padding(pad_id=int(tokenizer.get("pad_token_id") or 0))
    encodings = backend.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


def _images(preprocessing: Mapping[str, Any], images: Sequence[Any]) -> dict[str, np.ndarray]:
    from ..data.images import ImageTransform

    transform = ImageTransform(
        int(preprocessing["image_size"]), tuple(preprocessing["image_mean"]), tuple(preprocessing["image_std"]),
        crop=bool(preprocessing.get("image_crop")),
    )  # fmt: skip
    return {"pixel_values": torch.stack([transform(image) for image in images]).numpy()}


def _waveforms(preprocessing: Mapping[str, Any], waveforms: Sequence[Any]) -> dict[str, np.ndarray]:
    from ..data.audio import normalize_audio
    from ..data.padding import pad_waveforms

    clips = [torch.as_tensor(np.asarray(w, dtype=np.float32)).flatten() for w in waveforms]
    if preprocessing.get("normalize_audio", True) is not False:
        clips = [normalize_audio(clip) for clip in clips]
    values, mask = pad_waveforms(clips)
    return {"input_values": values.numpy(), "attention_mask": mask.numpy().astype(np.int64)}


def _log_mel(preprocessing: Mapping[str, Any], waveforms: Sequence[Any]) -> dict[str, np.ndarray]:
    from transformers import WhisperFeatureExtractor

    settings = preprocessing["log_mel"]
    extractor = WhisperFeatureExtractor(feature_size=settings["feature_size"], hop_length=settings["hop_length"],
                                        n_fft=settings["n_fft"])  # fmt: skip
    clips = [np.asarray(w, dtype=np.float32).flatten() for w in waveforms]
    extracted = extractor(
        clips, sampling_rate=preprocessing["sample_rate"], return_tensors="np", padding="max_length",
        max_length=settings["window_samples"], truncation=True, return_attention_mask=True,
    )  # fmt: skip
    return {
        "input_features": extracted["input_features"].astype(np.float32),
        "feature_attention_mask": extracted["attention_mask"].astype(np.int64),
    }
