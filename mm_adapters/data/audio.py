"""Audio data: CSV (path, label | transcript) -> Dataset, and clip decoding with soundfile.

Decoding uses soundfile rather than `datasets.Audio`, which needs FFmpeg/torchcodec.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import torchaudio.functional
from datasets import Dataset, Features, Value

from .labels import encode_labels
from .tables import read_table

PATH_NAMES = ("path", "file", "filename", "audio")


def _decode(source: Any) -> tuple[np.ndarray, int, str]:
    """(frames x channels float32 array, sample rate, description) from a path, bytes dict or array dict."""
    if isinstance(source, dict) and source.get("array") is not None:
        array = np.asarray(source["array"], dtype=np.float32)
        return array.reshape(len(array), -1), int(source["sampling_rate"]), "in-memory array"
    if isinstance(source, dict):
        name = source.get("path") or "audio bytes"
        target = io.BytesIO(source["bytes"]) if source.get("bytes") else source["path"]
    else:
        name, target = str(source), source
    if isinstance(target, (str, Path)) and Path(target).is_file() and Path(target).stat().st_size == 0:
        raise ValueError(f"Audio {name} is empty (a 0-byte file); remove it from the dataset.")
    try:
        array, rate = soundfile.read(target, dtype="float32", always_2d=True)
    except RuntimeError as error:  # soundfile.LibsndfileError
        raise ValueError(f"Cannot decode audio {name}: {error}. Convert it to WAV or FLAC.") from error
    return array, rate, name


def normalize_audio(waveform: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the clip, as Wav2Vec2FeatureExtractor(do_normalize=True) does."""
    return (waveform - waveform.mean()) / torch.sqrt(waveform.var(correction=0) + 1e-7)


def read_audio(source: Any, sample_rate: int, min_samples: int = 1, normalize: bool = True) -> torch.Tensor:
    """Decode a clip to a mono float tensor at `sample_rate`, normalised per clip.

    `source` is a file path, a {"bytes"|"path"} dict or an {"array", "sampling_rate"} dict. Raises ValueError for
    an empty clip or one shorter than `min_samples` after resampling (e.g. the encoder's receptive field).
    """
    array, rate, name = _decode(source)
    if array.size == 0:
        raise ValueError(f"Audio {name} is empty (0 samples); remove it from the dataset.")
    waveform = torch.from_numpy(array).mean(dim=1)
    if rate != sample_rate:
        waveform = torchaudio.functional.resample(waveform, rate, sample_rate)
    if waveform.numel() < max(min_samples, 1):
        raise ValueError(
            f"Audio {name} has {waveform.numel()} samples at {sample_rate} Hz, fewer than min_samples="
            f"{min_samples} (the shortest input the encoder accepts). Remove or pad the clip."
        )
    return normalize_audio(waveform) if normalize else waveform


def load_audio_csv(
    csv_path: str | Path,
    path_column: str | int | None = None,
    label_column: str | int | None = None,
    label_names: Sequence[str] | None = None,
    transcript_column: str | None = None,
) -> Dataset:
    """CSV of (path, label) or (path, transcript) rows -> Dataset with `path` (absolute) and `label`
    (ClassLabel) or `transcript` (str). Relative paths are resolved against the CSV's folder."""
    table = read_table(csv_path)
    path_key = (
        path_column if path_column is not None else next((n for n in PATH_NAMES if n in table.columns), 0)
    )
    folder = Path(csv_path).resolve().parent
    paths = [str((folder / value).resolve()) for value in table.column(path_key)]
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} audio files listed in {csv_path} do not exist, e.g. {missing[:3]}.")
    transcript_key = transcript_column or ("transcript" if "transcript" in table.columns else None)
    if transcript_key is not None and label_column is None:
        features = Features({"path": Value("string"), "transcript": Value("string")})
        return Dataset.from_dict(
            {"path": paths, "transcript": table.column(transcript_key)}, features=features
        )
    label_key = label_column if label_column is not None else ("label" if "label" in table.columns else -1)
    if table.column_index(label_key) == table.column_index(path_key):
        raise ValueError(f"{csv_path} needs a label or transcript column next to the path column.")
    class_label, ids = encode_labels(table.column(label_key), label_names, source=str(csv_path))
    features = Features({"path": Value("string"), "label": class_label})
    return Dataset.from_dict({"path": paths, "label": ids}, features=features)
