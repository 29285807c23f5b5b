"""Padding variable-length samples into batch tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .vocabulary import IGNORE_INDEX


def pad_waveforms(waveforms: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D waveforms to the longest: (`input_values` float B x T, `attention_mask` long B x T)."""
    length = max(waveform.numel() for waveform in waveforms)
    input_values = torch.zeros(len(waveforms), length, dtype=torch.float32)
    attention_mask = torch.zeros(len(waveforms), length, dtype=torch.long)
    for row, waveform in enumerate(waveforms):
        input_values[row, : waveform.numel()] = waveform
        attention_mask[row, : waveform.numel()] = 1
    return input_values, attention_mask


def pad_label_sequences(sequences: Sequence[Sequence[int]], pad_value: int = IGNORE_INDEX) -> torch.Tensor:
    """Pad id sequences to the longest with `pad_value` (-100, ignored by CTC/cross-entropy losses): long B x L."""
    length = max((len(sequence) for sequence in sequences), default=0)
    labels = torch.full((len(sequences), length), pad_value, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        labels[row, : len(sequence)] = torch.as_tensor(list(sequence), dtype=torch.long)
    return labels
