"""Fingerprints of local data: what ``--resume auto`` compares to tell the same run from another one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from .local_layout import TABLE_EXTENSIONS


def data_fingerprint(root: Path, options: dict, media: Iterable[str]) -> str:
    """The folder's fingerprint, the loading ``options`` and the size and modification time of every media file
    outside the folder that its tables name."""
    digest = hashlib.sha256(folder_fingerprint(root).encode())
    digest.update(json.dumps(options, sort_keys=True).encode())
    for path in sorted(media):
        if not Path(path).is_relative_to(root):
            stat = Path(path).stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def folder_fingerprint(path: str | Path) -> str:
    """A fingerprint of a data folder: the bytes of every table in it and the name, size and modification time of
    every other file, at any depth; it changes when a row, a table or a media file in the folder changes. For a
    table given directly: the tables next to it (its folder may hold anything else)."""
    path = Path(path).expanduser().resolve()
    root = path.parent if path.is_file() else path
    files = (
        [p for p in root.iterdir() if p.suffix.lower() in TABLE_EXTENSIONS]
        if path.is_file()
        else root.rglob("*")
    )
    digest = hashlib.sha256()
    for file in sorted(p for p in files if p.is_file() and not p.name.startswith(".")):
        relative = file.relative_to(root).as_posix()
        if file.suffix.lower() in TABLE_EXTENSIONS:
            digest.update(f"{relative}\0".encode() + hashlib.sha256(file.read_bytes()).digest())
        else:
            stat = file.stat()
            digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
