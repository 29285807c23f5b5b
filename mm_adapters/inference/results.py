"""Writing predictions: one row per input, as JSON lines or CSV (the format from the file's extension)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .exports import UsageError

FORMATS = {".jsonl": "jsonl", ".csv": "csv"}


def output_format(path: str | None, default: str = "jsonl") -> str:
    """``jsonl`` or ``csv`` from ``path``'s extension (``default`` for stdout). UsageError for another one."""
    if path is None or path == "-":
        return default
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"--output {path}: name a .csv or .jsonl file (the format follows the extension).",
                         "output")  # fmt: skip
    return FORMATS[suffix]


def flat_row(input_id: str, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A CSV row: ``input``, then per task its label or transcript, ``<task>_probability`` and ``<task>_top_k``
    (JSON), or ``<task>_embedding`` (JSON)."""
    row: dict[str, Any] = {"input": input_id}
    for task, answer in answers.items():
        if "transcript" in answer:
            row[task] = answer["transcript"]
        elif "embedding" in answer:
            row[f"{task}_embedding"] = json.dumps(answer["embedding"])
        else:
            row[task] = answer["label"]
            row[f"{task}_probability"] = answer["probability"]
            row[f"{task}_top_k"] = json.dumps(answer["top_k"], ensure_ascii=False)
    return row


class ResultWriter:
    """Writes rows as they come (``write``), so a long run shows its results early."""

    def __init__(self, handle: TextIO, kind: str) -> None:
        self.handle, self.kind = handle, kind
        self._csv: csv.DictWriter | None = None

    def write(self, ids: Sequence[str], answers: Iterable[dict[str, dict[str, Any]]]) -> None:
        for input_id, answer in zip(ids, answers, strict=True):
            if self.kind == "jsonl":
                self.handle.write(json.dumps({"input": input_id, **answer}, ensure_ascii=False) + "\n")
                continue
            row = flat_row(input_id, answer)
            if self._csv is None:
                self._csv = csv.DictWriter(self.handle, fieldnames=list(row), lineterminator="\n")
                self._csv.writeheader()
            self._csv.writerow(row)
        self.handle.flush()
