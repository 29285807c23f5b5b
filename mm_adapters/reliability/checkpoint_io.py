"""Lightning checkpoints written crash-safe and read without unpickling arbitrary objects.

Lightning's own ``TorchCheckpointIO`` already writes through an fsspec transaction (temporary file, then move).
:class:`AtomicCheckpointIO` adds what a SIGKILL or a power cut needs on a local disk: the temporary file is
fsynced before the rename and the folder after it, leftovers of a killed writer are removed, and loading uses
``torch.load(weights_only=True)`` unless the caller explicitly asks otherwise.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..atomic import write_file_atomically


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, truncated, or holding pickled objects."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``Trainer(plugins=[AtomicCheckpointIO()])``: every checkpoint is either the old complete file or the new
    complete file, never a half-written one; loading refuses pickled Python objects (``weights_only=True``)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}.")
        target = Path(path)
        _remove_leftovers(target)
        write_file_atomically(target, lambda tmp: torch.save(checkpoint, tmp))
        _fsync_directory(target.parent)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = True
    ) -> dict[str, Any]:
        try:
            return super().load_checkpoint(
                path, map_location=map_location or (lambda storage, loc: storage), weights_only=weights_only
            )
        except pickle.UnpicklingError as error:
            raise CheckpointError(_refused(path, error)) from error


def check_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Open a checkpoint the way a resume will (``weights_only=True``, memory-mapped) and return it, or raise
    :class:`CheckpointError` saying why it cannot be used and what to do."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(_refused(path, error)) from error
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(error).__name__}: {str(error).splitlines()[0]}). It is "
            "truncated or corrupt (e.g. copied while being written) or not a Lightning checkpoint; delete it to "
            "start over, or resume from another checkpoint."
        ) from error


def _refused(path: Any, error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines()]
    detail = next(
        (line for line in lines if "Unsupported" in line), lines[0] if lines else type(error).__name__
    )
    return (
        f"{path} holds pickled Python objects, which are refused because loading them could run arbitrary code "
        f"(torch.load(weights_only=True) says: {detail}). mm_adapters checkpoints never need them: use a "
        "checkpoint this library wrote, and never load one from a source you do not trust."
    )


def _remove_leftovers(target: Path) -> None:
    """Temporary files a killed writer left next to ``target`` (``write_file_atomically`` names them
    ``.<name>.<random>.tmp``); only one process writes a given checkpoint, so any such file is stale."""
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{target.name}.*.tmp"):
            leftover.unlink(missing_ok=True)


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
