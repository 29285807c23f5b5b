"""Text classification data: CSV/TSV -> Dataset, and tokenisation that warns when it truncates."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, Features, Value

from .labels import encode_labels
from .tables import read_table

TEXT_NAMES = ("text", "sentence", "sentence1", "review", "content")
LABEL_NAMES = ("label", "labels", "class", "target", "category", "sentiment")


def _pick(columns: list[str], wanted: str | int | None, known: tuple[str, ...], fallback: int) -> str | int:
    if wanted is not None:
        return wanted
    return next((name for name in known if name in columns), fallback)


def load_text_table(
    path: str | Path,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    label_names: Sequence[str] | None = None,
    header: bool | None = None,
    delimiter: str | None = None,
) -> Dataset:
    """CSV/TSV -> Dataset with `text` (str) and, when the file has a second column, `label` (ClassLabel).
    Columns default to a known header name (sentence, text, label, ...) or positions 0 and last."""
    table = read_table(path, delimiter, header)
    text_key = _pick(table.columns, text_column, TEXT_NAMES, 0)
    texts = table.column(text_key)
    if len(table.columns) == 1 and label_column is None:
        return Dataset.from_dict({"text": texts}, features=Features({"text": Value("string")}))
    label_key = _pick(table.columns, label_column, LABEL_NAMES, -1)
    if table.column_index(label_key) == table.column_index(text_key):
        raise ValueError(f"{path}: text and label are the same column {text_key!r}; pass label_column.")
    class_label, ids = encode_labels(table.column(label_key), label_names, source=str(path))
    features = Features({"text": Value("string"), "label": class_label})
    return Dataset.from_dict({"text": texts, "label": ids}, features=features)


def _is_hf_tokenizer(tokenizer: Callable[..., Any]) -> bool:
    return hasattr(tokenizer, "model_input_names") and hasattr(tokenizer, "pad_token_id")


def encode_texts(
    tokenizer: Callable[..., Any], texts: Sequence[str], max_length: int | None
) -> dict[str, torch.Tensor]:
    """Tokenise a batch into padded `input_ids` (+ `attention_mask` when the tokenizer gives one).

    A Hugging Face tokenizer is called with truncation at `max_length` and a warning is raised when any text was
    cut. Any other callable (e.g. open_clip's tokenizer) is called as `tokenizer(texts)` and must return a long
    tensor B x L or a dict with `input_ids`; it truncates by its own rules.
    """
    texts = ["" if text is None else str(text) for text in texts]
    if not _is_hf_tokenizer(tokenizer):
        output = tokenizer(texts)
        output = output if isinstance(output, dict) else {"input_ids": output}
        return {key: torch.as_tensor(output[key]) for key in ("input_ids", "attention_mask") if key in output}
    if max_length is not None:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]]
        if max(lengths, default=0) > max_length:
            # One fixed message per max_length, so Python shows it once rather than once per batch.
            warnings.warn(
                f"Some texts were longer than max_length={max_length} tokens and were truncated; "
                "raise max_length to keep more of them.",
                UserWarning,
                stacklevel=2,
            )
    encoded = tokenizer(
        texts, truncation=max_length is not None, max_length=max_length, padding=True, return_tensors="pt"
    )
    return {key: encoded[key] for key in ("input_ids", "attention_mask") if key in encoded}
