"""The format registry: every on-disk format says once how to detect, load and save itself; loading asks here.

As composition methods register in :mod:`mm_adapters.plugins`, a format is one file that calls
:func:`register_format` when it is imported: ours (:mod:`mm_adapters.serialization` for adapters,
:mod:`mm_adapters.composition.fusion_io` for fusions, :mod:`mm_adapters.lightning.export` for task-export folders)
and AdapterHub's (:mod:`mm_adapters.interop`). The code that loads a folder never names a format.

Kinds and the calls they take:

- ``"adapter"`` / ``"fusion"``: ``load(model, folder, name, *, head, set_active, strict) -> name``,
  ``save(model, name, directory, *, head, overwrite, **options) -> Path``;
- ``"head"``: ``load(folder) -> nn.Module``;
- ``"task"`` (an exported task: adapter or fusion, head, labels): ``load(backbone, folder, *, adapters) -> head``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AdapterLoadError

KINDS = ("adapter", "fusion", "head", "task")


@dataclass(frozen=True)
class FileFormat:
    """One on-disk format of one kind of thing."""

    name: str
    """What users pass as ``format=`` when saving (``"mm_adapters"``, ``"adapterhub"``)."""
    kind: str
    """``"adapter"``, ``"fusion"``, ``"head"`` or ``"task"``."""
    detect: Callable[[Path], bool]
    """Whether a local folder holds this format."""
    load: Callable[..., Any]
    save: Callable[..., Path] | None = None
    files: tuple[str, ...] = ()
    """Glob patterns of the files loading needs (what a hub download fetches)."""
    fallback: bool = False
    """Load with this format when no format detects the folder (its errors say what the folder lacks)."""


_FORMATS: dict[tuple[str, str], FileFormat] = {}


def register_format(file_format: FileFormat) -> FileFormat:
    """Add ``file_format``; registering the same name and kind again replaces it (a module reloaded)."""
    if file_format.kind not in KINDS:
        raise ValueError(f"A format's kind is one of {KINDS}, got {file_format.kind!r}.")
    _FORMATS[(file_format.kind, file_format.name)] = file_format
    return file_format


def formats(kind: str) -> list[FileFormat]:
    """The registered formats of ``kind``, in registration order."""
    return [f for (k, _), f in _FORMATS.items() if k == kind]


def format_named(kind: str, name: str) -> FileFormat:
    """The ``kind`` format called ``name`` (what ``format=`` selects when saving)."""
    found = _FORMATS.get((kind, name))
    if found is None:
        known = sorted(f.name for f in formats(kind))
        raise ValueError(f"Unknown {kind} format {name!r}; known: {known} (import mm_adapters first).")
    return found


def detect_format(folder: Path, kind: str) -> FileFormat:
    """The format of ``kind`` that recognises ``folder``; else the fallback format, whose loader then says what the
    folder lacks; else an :class:`AdapterLoadError` listing what was looked for."""
    candidates = formats(kind)
    if folder.is_dir():
        for file_format in candidates:
            if file_format.detect(folder):
                return file_format
    for file_format in candidates:
        if file_format.fallback:
            return file_format
    known = ", ".join(f"{f.name} ({', '.join(f.files)})" for f in candidates) or "none registered"
    raise AdapterLoadError(f"{folder} holds no {kind} folder of a known format: {known}.")


def hub_files(kind: str) -> tuple[str, ...]:
    """Every file pattern the ``kind`` formats load (what a hub download of that kind fetches); a task folder holds
    an adapter or a fusion, so ``"task"`` adds theirs."""
    kinds = ("adapter", "fusion", "task") if kind == "task" else (kind,)
    patterns: dict[str, None] = {}
    for file_format in (f for k in kinds for f in formats(k)):
        patterns.update(dict.fromkeys(file_format.files))
    return tuple(patterns)
