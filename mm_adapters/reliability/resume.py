"""Find the checkpoint a restarted run continues from: an explicit path, or ``last.ckpt`` in its output folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..injection import list_adapters
from .checkpoint_io import CheckpointError, check_checkpoint

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
AUTO, NEVER = "auto", "none"


def find_last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """``<output_dir>/checkpoints/last.ckpt`` when it exists, else None."""
    path = Path(output_dir) / LAST_CHECKPOINT
    return path if path.is_file() else None


def resolve_resume(resume: str | os.PathLike | None, output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from, checked to be loadable.

    ``resume`` is ``"auto"`` (or None): the run's own ``last.ckpt`` if an earlier run left one, so that restarting
    a killed run with the same command continues it; ``"none"``: start over; anything else: a checkpoint path.
    Raises :class:`CheckpointError` for a missing or unusable file, saying what to do.
    """
    if resume is None or str(resume) == AUTO:
        path = find_last_checkpoint(output_dir)
        if path is None:
            return None
        try:
            check_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error} It was found in --output-dir for automatic resume; pass --resume none to start over."
            ) from error
        return path
    if str(resume) == NEVER:
        return None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} does not exist; pass an existing .ckpt file, 'auto' or 'none'."
        )
    check_checkpoint(path)
    return path


def checkpoint_mismatch(checkpoint: str | os.PathLike | dict[str, Any], module: nn.Module) -> str | None:
    """Why ``checkpoint`` cannot continue training ``module``: other tensor names or shapes (another placement,
    layer set or class count) or other adapter configs; None when it fits."""
    if not isinstance(checkpoint, dict):
        checkpoint = check_checkpoint(checkpoint)
    saved, expected = checkpoint.get("state_dict", {}), module.state_dict()
    missing, unexpected = sorted(set(expected) - set(saved)), sorted(set(saved) - set(expected))
    if missing or unexpected:
        return f"the checkpoint lacks tensors {missing[:3]} of this run and has {unexpected[:3]} it does not"
    for key, tensor in expected.items():
        if tuple(saved[key].shape) != tuple(tensor.shape):
            return f"{key} is {tuple(saved[key].shape)} there but {tuple(tensor.shape)} here"
    saved_adapters = checkpoint.get("mm_adapters", {}).get("adapters")
    backbone = getattr(module, "backbone", None)
    if saved_adapters is not None and backbone is not None:
        current = {name: config.to_dict() for name, config in list_adapters(backbone.model).items()}
        if saved_adapters != current:
            return f"adapters {saved_adapters} there, {current} here"
    return None
