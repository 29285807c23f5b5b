"""One tokenizer interface for the data code: ``tokenizer(texts) -> dict`` of padded LongTensors.

Hugging Face tokenizers give ``input_ids`` and ``attention_mask``; open_clip's give fixed-length ``input_ids``
only. Wrapping both lets the data code tokenize captions and sentences without knowing the model family.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import torch


class TextTokenizer(Protocol):
    max_length: int

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]: ...


class HFTextTokenizer:
    """A Hugging Face tokenizer that pads to the longest text and truncates to ``max_length`` with a warning."""

    def __init__(self, tokenizer: Any, max_length: int = 128) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_token_id = tokenizer.pad_token_id

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        full = int((batch["attention_mask"].sum(dim=1) >= self.max_length).sum())
        if full:
            warnings.warn(
                f"{full} text(s) reached max_length={self.max_length} tokens and were probably truncated; "
                "raise max_length if the end of the text matters.",
                stacklevel=2,
            )
        return batch


class OpenCLIPTextTokenizer:
    """open_clip's tokenizer: fixed context length (the model's), no attention mask."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_token_id = 0

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return {"input_ids": self.tokenizer(texts, context_length=self.max_length)}
