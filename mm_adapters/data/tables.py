"""Reading small CSV/TSV files into columns, with the delimiter taken from the extension and header detection."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

HEADER_WORDS = frozenset(
    {"text", "sentence", "sentence1", "review", "content", "label", "labels", "class", "target", "category",
     "sentiment", "path", "file", "filename", "audio", "image", "image_path", "caption", "transcript", "text_label"}
)  # fmt: skip


@dataclass(frozen=True)
class Table:
    """Rows of a delimited file; `columns` are the header names, or "0", "1", ... when there is no header."""

    path: Path
    columns: list[str]
    rows: list[list[str]]

    def column(self, key: str | int) -> list[str]:
        """Values of one column, chosen by header name or position."""
        index = self.column_index(key)
        return [row[index] for row in self.rows]

    def column_index(self, key: str | int) -> int:
        """Position of a column given by header name or position."""
        if isinstance(key, int) and -len(self.columns) <= key < len(self.columns):
            return key % len(self.columns)
        if isinstance(key, str) and key in self.columns:
            return self.columns.index(key)
        raise ValueError(f"Column {key!r} not found in {self.path}; its columns are {self.columns}.")


def delimiter_for(path: Path) -> str:
    """Tab for .tsv/.tab files, comma otherwise."""
    return "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","


def looks_like_header(first_row: list[str], other_rows: list[list[str]]) -> bool:
    """A header when its fields are known column names, or when it is the only row whose last field is not
    an integer (e.g. `sentence<TAB>label` above 0/1 labels)."""
    if first_row and all(field.strip().lower() in HEADER_WORDS for field in first_row):
        return True

    def is_int(field: str) -> bool:
        return field.strip().lstrip("-").isdigit()

    last = [row[-1] for row in other_rows[:100] if row]
    return bool(last) and not is_int(first_row[-1]) and all(is_int(field) for field in last)


def read_table(path: str | Path, delimiter: str | None = None, header: bool | None = None) -> Table:
    """Read a CSV/TSV file. `header=None` detects one (see `looks_like_header`)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Table file {path} not found; pass the path of an existing CSV or TSV file.")
    delimiter = delimiter or delimiter_for(path)
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle, delimiter=delimiter, quoting=quoting) if row]
    if not rows:
        raise ValueError(f"Table file {path} is empty; it needs at least one row.")
    if header is None:
        header = looks_like_header(rows[0], rows[1:])
    columns = [field.strip() for field in rows[0]] if header else [str(i) for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    for number, row in enumerate(body, start=2 if header else 1):
        if len(row) != len(columns):
            raise ValueError(
                f"{path} line {number} has {len(row)} fields, expected {len(columns)} "
                f"(delimiter {delimiter!r}); quote fields that contain the delimiter."
            )
    return Table(path, columns, body)
