"""What ``mm-adapters predict`` reads: files, folders (searched recursively), tables, or text lines on stdin.

A table (csv, tsv, jsonl, json, parquet) is read as ``--data`` reads it, and its input column found by the same
names (``text`` / ``sentence`` / ... for text, ``image`` / ``path`` / ... for images, ``file`` / ``path`` / ...
for audio) unless ``column`` names it; media paths are relative to the table's folder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ..data.errors import LocalDataError
from ..data.images import IMAGE_EXTENSIONS
from ..data.local_columns import AUDIO, IMAGE, TEXT, Role
from ..data.local_layout import TABLE_EXTENSIONS
from ..data.local_tables import read_table_split
from .batches import InputItem
from .exports import UsageError

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"})
TEXT_EXTENSIONS = frozenset({".txt"})
ROLES: dict[str, Role] = {"text": TEXT, "image": IMAGE, "audio": AUDIO}
MEDIA_EXTENSIONS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS}


def collect_inputs(
    sources: Sequence[str], modality: str, column: str | None = None, stdin: TextIO | None = None
) -> list[InputItem]:
    """Every input named by ``sources`` (``-`` or none: text lines from ``stdin``) as ``modality`` items, in order.
    UsageError for a path that does not exist or holds nothing of that kind."""
    if not sources or list(sources) == ["-"]:
        if modality != "text" or stdin is None:
            raise UsageError(f"Name the {modality} files, folders or table to predict on.", "input")
        return list(_lines(stdin, "stdin"))
    items: list[InputItem] = []
    for source in sources:
        items.extend(_from_source(source, modality, column, stdin))
    if not items:
        raise UsageError(f"{', '.join(sources)} hold no {modality} inputs.", "input")
    return items


def _from_source(source: str, modality: str, column: str | None, stdin: TextIO | None) -> Iterator[InputItem]:
    if source == "-":
        if modality != "text" or stdin is None:
            raise UsageError(f"'-' reads text lines from stdin; these tasks read {modality}.", "input")
        yield from _lines(stdin, "stdin")
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"Input {source} does not exist; check the path.", "input")
    suffix = path.suffix.lower()
    if path.is_dir():
        yield from _folder(path, modality)
    elif suffix in TABLE_EXTENSIONS:
        yield from _table(path, modality, column)
    elif modality == "text" and suffix in TEXT_EXTENSIONS:
        with path.open(encoding="utf-8") as handle:
            yield from _lines(handle, str(path))
    elif modality in MEDIA_EXTENSIONS and suffix in MEDIA_EXTENSIONS[modality]:
        yield InputItem(str(path), modality, str(path))
    else:
        raise UsageError(_wrong_kind(path, modality), "input")


def _wrong_kind(path: Path, modality: str) -> str:
    wanted = {"image": "image files", "audio": "audio files", "text": "a .txt file of lines, text on stdin"}
    found = next((kind for kind, ext in MEDIA_EXTENSIONS.items() if path.suffix.lower() in ext), None)
    what = f"an {found} file" if found else f"not a file predict reads ({path.suffix or 'no extension'})"
    return (
        f"Input {path} is {what}, but these tasks read {modality}: pass {wanted[modality]}, folders of them, or a "
        f"table ({', '.join(ext[1:] for ext in TABLE_EXTENSIONS)})."
    )


def _folder(root: Path, modality: str) -> Iterator[InputItem]:
    if modality not in MEDIA_EXTENSIONS:
        raise UsageError(
            f"Input {root} is a folder; text comes as a table, a .txt file or stdin lines.", "input"
        )
    extensions = MEDIA_EXTENSIONS[modality]
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions):
        yield InputItem(str(path), modality, str(path))


def _table(path: Path, modality: str, column: str | None) -> Iterator[InputItem]:
    try:
        dataset = read_table_split(path)
    except LocalDataError as error:
        raise UsageError(str(error), "input") from None
    name = column or find_column(dataset.column_names, ROLES[modality])
    if column is not None and column not in dataset.column_names:
        raise UsageError(
            f"{path} has no column {column!r}; its columns are {dataset.column_names}.", "column"
        )
    if name is None:
        role = ROLES[modality]
        raise UsageError(
            f"{path} has no {modality} column: predict looks for one named {' / '.join(role.candidates)} and its "
            f"columns are {dataset.column_names}. Pass --column NAME.",
            "column",
        )
    for index, value in enumerate(dataset[name]):
        if modality == "text":
            yield InputItem(f"{path.name}:{index + 1}", "text", "" if value is None else str(value))
        else:
            media = Path(str(value)).expanduser()
            media = media if media.is_absolute() else path.resolve().parent / media
            yield InputItem(str(value), modality, str(media))


def find_column(columns: Iterable[str], role: Role) -> str | None:
    """The first of ``role``'s documented names the table has (case-insensitive), as ``--data`` picks it."""
    lowered = {column.lower(): column for column in reversed(list(columns))}
    return next((lowered[name] for name in role.candidates if name in lowered), None)


def _lines(handle: TextIO, where: str) -> Iterator[InputItem]:
    for number, line in enumerate(handle, start=1):
        text = line.rstrip("\n")
        if text.strip():
            yield InputItem(f"{where}:{number}", "text", text)
