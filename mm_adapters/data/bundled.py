"""Paths of the small demo data sets bundled in the repository's `data/` folder (see data/README.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, NamedTuple

DATA_ENV_VAR = "MM_ADAPTERS_DATA"
SST2_LABEL_NAMES = ("negative", "positive")
"""Names of SST-2's labels 0 and 1 (pass as `label_names` to load_text_table)."""


class CaptionFiles(NamedTuple):
    """An images folder and the COCO caption json that describes it."""

    images_dir: Path
    captions_json: Path


def data_root(root: str | Path | None = None) -> Path:
    """The bundled data folder: `root` if given, else $MM_ADAPTERS_DATA, else the repository's `data/`."""
    candidate = root or os.environ.get(DATA_ENV_VAR) or Path(__file__).resolve().parents[2] / "data"
    path = Path(candidate).expanduser().resolve()
    if not (path / "cifar10").is_dir():
        raise FileNotFoundError(
            f"Bundled data not found at {path}. Point {DATA_ENV_VAR} (or the `root` argument) at the "
            "repository's data/ folder; it holds cifar10/, fsdd/, coco_mini/ and text/."
        )
    return path


def _existing(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"Bundled data file {path} is missing; restore the repository's data/ folder."
        )
    return path


def cifar10_dir(root: str | Path | None = None) -> Path:
    """CIFAR-10 subset in imagefolder layout: `<dir>/{train,test}/<class>/*.jpg`."""
    return _existing(data_root(root) / "cifar10")


def fsdd_csv(
    task: Literal["accent", "asr", "digit_speaker", "asr_speaker"],
    split: Literal["train", "val"],
    root: str | Path | None = None,
) -> Path:
    """Free Spoken Digit CSV: accent -> (path, label), asr -> (path, transcript), split by recording index;
    digit_speaker -> (path, digit word) and asr_speaker -> (path, transcript), split by speaker (val: lucas,
    theo). Paths are relative to the CSV."""
    return _existing(data_root(root) / "fsdd" / f"{task}_{split}.csv")


def coco_mini(split: Literal["train", "val"], root: str | Path | None = None) -> CaptionFiles:
    """COCO 2017 mini subset: images folder and caption json (5 captions per image)."""
    folder = data_root(root) / "coco_mini"
    return CaptionFiles(_existing(folder / f"{split}2017"), _existing(folder / f"captions_{split}2017.json"))


def sst2_tsv(split: Literal["train", "validation"], root: str | Path | None = None) -> Path:
    """SST-2 TSV (`sentence<TAB>label` with header, labels 0/1)."""
    return _existing(data_root(root) / "text" / "sst2" / f"{split}.tsv")


def agnews_tsv(split: Literal["train", "validation"], root: str | Path | None = None) -> Path:
    """AG News TSV (`sentence<TAB>label` with header, labels are class names)."""
    return _existing(data_root(root) / "text" / "agnews" / f"{split}.tsv")
