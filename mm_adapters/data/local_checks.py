"""Checks of a local data set before training: empty fields, media files that do not exist or do not decode
(each decoded once, in parallel, with a progress bar), and one error that lists every bad row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile
from datasets import Dataset
from PIL import Image

from .errors import LocalDataError

SHOWN = 10
"""Bad rows listed in an error; the rest are counted."""


@dataclass(frozen=True)
class Problem:
    """One bad row (or file): where it is, what is wrong with it and what to do."""

    where: str
    what: str
    fix: str


def raise_problems(problems: Sequence[Problem], context: str) -> None:
    """Raise one LocalDataError listing the problems (the first SHOWN), or return when there are none."""
    if not problems:
        return
    lines = [f"  {p.where}: {p.what}" for p in problems[:SHOWN]]
    if len(problems) > SHOWN:
        lines.append(f"  ... and {len(problems) - SHOWN} more")
    fixes = list(dict.fromkeys(p.fix for p in problems))
    raise LocalDataError(
        f"{context}: {len(problems)} problem{'s' if len(problems) > 1 else ''} found before training (nothing "
        "was trained or written):\n" + "\n".join(lines) + "\n" + " ".join(fixes)
    )


def is_empty(value: Any) -> bool:
    """None, NaN or a blank string."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def media_problem(path: str, kind: str, sample_rate: int | None = None, min_samples: int = 1) -> str | None:
    """Why the image or audio file at ``path`` cannot be used (decoded in full), or None."""
    file = Path(path)
    if not file.is_file():
        return "does not exist"
    if file.stat().st_size == 0:
        return "is an empty (0-byte) file"
    try:
        if kind == "image":
            with Image.open(file) as image:
                image.load()
                if 0 in image.size:
                    return f"has size {image.size}"
            return None
        array, rate = soundfile.read(file, dtype="float32", always_2d=True)
    except Exception as error:  # PIL.UnidentifiedImageError, OSError, soundfile.LibsndfileError ...
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"cannot be decoded ({type(error).__name__}: {first})"
    if array.shape[0] == 0:
        return "has 0 samples"
    target = sample_rate or rate
    resampled = array.shape[0] * target / rate
    if resampled < min_samples:
        return (
            f"is too short: {array.shape[0]} samples at {rate} Hz is {int(resampled)} at {target} Hz, fewer "
            f"than the {min_samples} the encoder needs"
        )
    return None


def _check_batch(batch: dict[str, list], kind: str, sample_rate: int | None, min_samples: int) -> dict:
    return {"problem": [media_problem(p, kind, sample_rate, min_samples) or "" for p in batch["path"]]}


def check_media(
    paths: Sequence[str],
    kind: str,
    num_workers: int = 0,
    sample_rate: int | None = None,
    min_samples: int = 1,
    description: str = "",
) -> dict[str, str]:
    """Decode every distinct file once (``num_workers`` processes, with a progress bar); path -> problem for the
    files that cannot be used."""
    unique = list(dict.fromkeys(paths))
    if not unique:
        return {}
    checked = Dataset.from_dict({"path": unique}).map(
        _check_batch,
        batched=True,
        batch_size=64,
        num_proc=num_workers if num_workers > 1 and len(unique) > 64 else None,
        keep_in_memory=True,
        load_from_cache_file=False,
        fn_kwargs={"kind": kind, "sample_rate": sample_rate, "min_samples": min_samples},
        desc=description or f"Checking {len(unique)} {kind} files",
    )
    return {path: problem for path, problem in zip(unique, checked["problem"], strict=True) if problem}
