"""Reading one split of a local data set: a table through `datasets` in its real format, or an image class folder."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, Features, Value, load_dataset

from .errors import LocalDataError
from .images import IMAGE_EXTENSIONS

BUILDERS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def read_table_split(path: Path, cache_dir: str | None = None) -> Dataset:
    """A table file as a Dataset, read by its format: CSV/TSV (header row; every cell kept as written, no "NA"
    guessing; TSV without quote handling), JSON lines, JSON (a list of records), Parquet."""
    suffix = path.suffix.lower()
    options: dict[str, Any] = {}
    if BUILDERS[suffix] == "csv":
        options = {"na_filter": False}
        if suffix == ".tsv":
            options.update(sep="\t", quoting=csv.QUOTE_NONE)
        options["features"] = _all_strings(path, options.get("sep", ","), options.get("quoting", csv.QUOTE_MINIMAL))
    try:
        return load_dataset(
            BUILDERS[suffix], data_files=str(path), split="train", cache_dir=cache_dir, **options
        )
    except Exception as error:  # pyarrow / pandas parser errors name neither the file nor the fix
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        cause = getattr(error, "__cause__", None)
        if cause is not None and str(cause):
            detail = f"{detail}: {str(cause).splitlines()[0]}"
        raise LocalDataError(
            f"Cannot read {path} as {suffix[1:].upper()} ({detail}). Check that the file is valid "
            f"{suffix[1:].upper()}{' with a header row' if BUILDERS[suffix] == 'csv' else ''}, or give it the "
            "extension of its real format."
        ) from error


def _all_strings(path: Path, sep: str, quoting: int) -> Features | None:
    """Every column of a CSV/TSV read as text, so that a label column of numbers with one empty cell cannot
    change type half-way through the file."""
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        header = next(csv.reader(handle, delimiter=sep, quoting=quoting), None)
    if not header or len(set(header)) != len(header):
        return None  # pandas reports the empty file or names the duplicate columns
    return Features({name: Value("string") for name in header})


def column_values(dataset: Dataset, column: str) -> list[Any]:
    """A column's values; a ClassLabel column gives its class names."""
    values = dataset[column]
    feature = dataset.features[column]
    if isinstance(feature, ClassLabel):
        return [None if v is None or v < 0 else feature.names[v] for v in values]
    return list(values)


def row_location(path: Path, index: int) -> str:
    """Where row ``index`` (0-based, after the header) is in its file, as an editor shows it."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return f"line {index + 2}"
    if suffix == ".jsonl":
        return f"line {index + 1}"
    return f"record {index}"


def read_image_folder(root: Path) -> dict[str, list[str]]:
    """``root/<class>/<image>`` (images may sit deeper) -> {"image": paths, "label": class names}. Raises
    LocalDataError for images outside class folders or a folder without any."""
    layout = f"Expected layout: {root}/<class name>/<image> with one subfolder per class."
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if loose:
        raise LocalDataError(f"{root} has images outside class subfolders ({loose[:3]}). {layout}")
    images, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for file in sorted(folder.rglob("*")):
            if file.is_file() and file.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(str(file))
                labels.append(folder.name)
    if not images:
        raise LocalDataError(f"{root} has no class subfolders with images. {layout}")
    return {"image": images, "label": labels}
