"""open_clip's tokenizer as a plain ``tokenizer(texts) -> {"input_ids"}`` callable at the model's context length.

Hugging Face backbones expose their own tokenizer unchanged (the data code pads and truncates it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class OpenCLIPTextTokenizer:
    """open_clip's tokenizer: fixed context length (the model's), no attention mask."""

    def __init__(self, tokenizer: Any, context_length: int) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        texts = [texts] if isinstance(texts, str) else list(texts)
        return {"input_ids": self.tokenizer(texts, context_length=self.context_length)}
