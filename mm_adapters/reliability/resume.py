"""Find the checkpoint a restarted run continues from: an explicit path, or ``last.ckpt`` in its output folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..injection import list_adapters
from .checkpoint_io import CheckpointError, check_checkpoint
from .fingerprint import RunFingerprint, saved_fingerprint

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
AUTO, NEVER = "auto", "none"
METRICS_FILE = "metrics.json"
"""The report a finished run leaves in its output folder."""


class ResumeRefusedError(CheckpointError):
    """``resume="auto"`` found a checkpoint of another run (other data or settings) in the output folder."""


class RunFinishedError(CheckpointError):
    """``resume="auto"`` found a finished run with its report in the output folder: nothing is left to train."""


def find_last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """``<output_dir>/checkpoints/last.ckpt`` when it exists, else None."""
    path = Path(output_dir) / LAST_CHECKPOINT
    return path if path.is_file() else None


def resolve_resume(
    resume: str | os.PathLike | None,
    output_dir: str | os.PathLike,
    fingerprint: RunFingerprint | None = None,
    *,
    report: str | os.PathLike | None = None,
    start_over: str = "resume='none'",
    other_output: str = "another output_dir",
) -> Path | None:
    """The checkpoint to resume from, checked to be loadable.

    ``resume`` is ``"auto"`` (or None): the run's own ``last.ckpt`` if an earlier run left one, so that restarting
    a killed run with the same command continues it; ``"none"``: start over; anything else: a checkpoint path.
    Raises :class:`CheckpointError` for a missing or unusable file, saying what to do.

    With a ``fingerprint`` (data and settings of this run), ``"auto"`` continues only a checkpoint of the same
    run: another run's raises :class:`ResumeRefusedError` naming both; a finished run whose ``metrics.json`` is
    there (``report``, default ``output_dir/metrics.json``) raises :class:`RunFinishedError` instead of training 0
    steps and overwriting it. ``start_over``
    and ``other_output`` are how the messages name the two ways out (a command line passes its own flags).
    """
    report = Path(report) if report is not None else Path(output_dir) / METRICS_FILE
    if resume is None or str(resume) == AUTO:
        path = find_last_checkpoint(output_dir)
        if path is None:
            if fingerprint is not None and report.is_file():
                raise RunFinishedError(
                    f"{report} is the report of an earlier run, and there is no checkpoint "
                    f"to tell whether it was this one; it is kept. Use {other_output}, or pass {start_over} to "
                    "train again and replace it."
                )
            return None
        try:
            checkpoint = check_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error} It was found in {output_dir} for automatic resume; pass {start_over} to start over."
            ) from error
        if fingerprint is not None:
            _check_same_run(path, checkpoint, fingerprint, report, start_over, other_output)
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


def _check_same_run(
    path: Path,
    checkpoint: dict[str, Any],
    fingerprint: RunFingerprint,
    report: Path,
    start_over: str,
    other_output: str,
) -> None:
    saved, finished = saved_fingerprint(checkpoint)
    ways_out = f"Pass {start_over} to start over (that checkpoint will be replaced) or use {other_output}"
    if saved is None:
        raise ResumeRefusedError(
            f"{path} holds no run fingerprint (an older version wrote it), so it cannot be told apart from another "
            f"run with other data or settings. {ways_out}."
        )
    differences = fingerprint.differences(saved)
    if differences:
        raise ResumeRefusedError(
            f"{path} belongs to another run, so it is not resumed: " + "; ".join(differences[:6])
            + f". {ways_out}; to continue that checkpoint with these settings anyway, pass resume='<its path>'."
        )  # fmt: skip
    if finished and report.is_file():
        raise RunFinishedError(
            f"{path} is a finished run of the same data and settings; its results are in {report} and are kept. "
            f"Use {other_output}, or pass {start_over} to train again and replace them."
        )


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
