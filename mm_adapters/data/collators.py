"""Collate functions: lists of dataset rows -> the batch dicts of the batch contract (docs/HELPERS_CONTEXT.md).

Every row must carry its dataset row `index` (IndexedDataset adds it; AdapterDataModule wraps for you).
Preprocessing parameters (image transform, sample rate, tokenizer) come from the backbone wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .audio import read_audio
from .labels import check_label_range
from .padding import pad_label_sequences, pad_waveforms
from .text import encode_texts
from .vocabulary import CharVocabulary

Row = Mapping[str, Any]


def row_indices(rows: Sequence[Row]) -> torch.Tensor:
    """`index` of each row as a long tensor."""
    if any("index" not in row for row in rows):
        raise KeyError(
            "Rows need an 'index' key; wrap the dataset in IndexedDataset (AdapterDataModule does)."
        )
    return torch.tensor([int(row["index"]) for row in rows], dtype=torch.long)


def class_labels(rows: Sequence[Row], column: str, num_classes: int | None) -> torch.Tensor:
    """Labels of the rows as a long tensor, checked to be in 0..num_classes-1."""
    labels = [int(row[column]) for row in rows]
    check_label_range(labels, num_classes, source=f"batch column {column!r}")
    return torch.tensor(labels, dtype=torch.long)


@dataclass
class ImageClassificationCollator:
    """-> `pixel_values` float B x 3 x H x W, `labels` long B, `index` long B."""

    transform: Callable[[Any], torch.Tensor]
    image_column: str = "image"
    label_column: str = "label"
    num_classes: int | None = None

    def __call__(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        return {
            "pixel_values": torch.stack([self.transform(row[self.image_column]) for row in rows]),
            "labels": class_labels(rows, self.label_column, self.num_classes),
            "index": row_indices(rows),
        }


@dataclass
class AudioClassificationCollator:
    """-> `input_values` float B x T (mono, resampled, normalised, zero-padded), `attention_mask` long B x T,
    `labels` long B, `index` long B. For a hub dataset's `audio` column, cast it to `Audio(decode=False)` first
    (datasets' decoder needs FFmpeg) and pass `audio_column="audio"`."""

    sample_rate: int
    min_samples: int = 1
    audio_column: str = "path"
    label_column: str = "label"
    num_classes: int | None = None
    normalize: bool = True
    """Zero mean, unit variance per clip (``backbone.normalize_audio``: off for Whisper)."""

    def __call__(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        waveforms = [
            read_audio(row[self.audio_column], self.sample_rate, self.min_samples, self.normalize)
            for row in rows
        ]
        input_values, attention_mask = pad_waveforms(waveforms)
        return {
            "input_values": input_values,
            "attention_mask": attention_mask,
            "labels": class_labels(rows, self.label_column, self.num_classes),
            "index": row_indices(rows),
        }


@dataclass
class TextClassificationCollator:
    """-> `input_ids`, `attention_mask` long B x L (truncated at max_length with a warning), `labels`, `index`."""

    tokenizer: Callable[..., Any]
    max_length: int | None = 128
    text_column: str = "text"
    label_column: str = "label"
    num_classes: int | None = None

    def __call__(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        encoded = encode_texts(self.tokenizer, [row[self.text_column] for row in rows], self.max_length)
        return {
            **encoded,
            "labels": class_labels(rows, self.label_column, self.num_classes),
            "index": row_indices(rows),
        }


@dataclass
class RetrievalCollator:
    """-> `pixel_values`, `input_ids` (+ `attention_mask`), `image_ids` long B (same id = same image), `index`."""

    transform: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., Any]
    max_length: int | None = 77
    image_column: str = "image_path"
    caption_column: str = "caption"
    image_id_column: str = "image_id"

    def __call__(self, rows: Sequence[Row]) -> dict[str, torch.Tensor]:
        encoded = encode_texts(self.tokenizer, [row[self.caption_column] for row in rows], self.max_length)
        return {
            "pixel_values": torch.stack([self.transform(row[self.image_column]) for row in rows]),
            **encoded,
            "image_ids": torch.tensor([int(row[self.image_id_column]) for row in rows], dtype=torch.long),
            "index": row_indices(rows),
        }


@dataclass
class CTCCollator:
    """-> `input_values`, `attention_mask`, `labels` long B x L (character ids, -100 padding), `transcripts`
    list[str], `index`."""

    sample_rate: int
    vocabulary: CharVocabulary
    min_samples: int = 1
    audio_column: str = "path"
    transcript_column: str = "transcript"
    normalize: bool = True
    """Zero mean, unit variance per clip (``backbone.normalize_audio``: off for Whisper)."""

    def __call__(self, rows: Sequence[Row]) -> dict[str, Any]:
        batch = audio_and_transcripts(self, rows)
        labels = pad_label_sequences([self.vocabulary.encode(text) for text in batch["transcripts"]])
        return {**batch, "labels": labels}


@dataclass
class TranscriptCollator:
    """-> `input_values`, `attention_mask`, `transcripts` list[str], `index`: raw audio and its text, for models that
    tokenize transcripts themselves (:class:`mm_adapters.lightning.SpeechSeq2SeqModule`)."""

    sample_rate: int
    min_samples: int = 1
    audio_column: str = "path"
    transcript_column: str = "transcript"
    normalize: bool = True
    """Zero mean, unit variance per clip (``backbone.normalize_audio``: off for Whisper)."""

    def __call__(self, rows: Sequence[Row]) -> dict[str, Any]:
        return audio_and_transcripts(self, rows)


def audio_and_transcripts(collator: CTCCollator | TranscriptCollator, rows: Sequence[Row]) -> dict[str, Any]:
    """The padded clips and their transcripts, as both speech-recognition collators give them."""
    waveforms = [
        read_audio(row[collator.audio_column], collator.sample_rate, collator.min_samples, collator.normalize)
        for row in rows
    ]
    input_values, attention_mask = pad_waveforms(waveforms)
    return {
        "input_values": input_values,
        "attention_mask": attention_mask,
        "transcripts": [str(row[collator.transcript_column]) for row in rows],
        "index": row_indices(rows),
    }
