"""Small generated user data folders, one per modality, in the documented local-data layout."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

WORDS = {"pos": ["great", "lovely", "superb", "fun"], "neg": ["awful", "dull", "bad", "boring"]}
DIGITS = ["zero", "one", "two"]


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def text_rows(count: int, seed: int = 0) -> list[list[str]]:
    """(text, label-name) rows whose label is readable from the words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choice(WORDS[label], size=3)
        rows.append([f"the film was {' and '.join(words)}", label])
    return rows


def text_folder(root: Path, train: int = 16, validation: int = 8, header=("text", "label")) -> Path:
    write_csv(root / "train.csv", list(header), text_rows(train, 0))
    write_csv(root / "validation.csv", list(header), text_rows(validation, 1))
    return root


def tone(frequency: float, rate: int, seconds: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def audio_folder(root: Path, task: str = "label", per_class: int = 4, rate: int = 22050) -> Path:
    """wav clips at ``rate`` in clips/ and train.csv/validation.csv of ``file,label`` or ``file,transcript``."""
    rows: dict[str, list[list[str]]] = {"train": [], "validation": []}
    for c, word in enumerate(DIGITS[:2] if task == "label" else DIGITS):
        for i in range(per_class + 2):
            name = f"clips/{word}_{i}.wav"
            (root / "clips").mkdir(parents=True, exist_ok=True)
            soundfile.write(root / name, tone(300.0 + 200 * c + 5 * i, rate), rate)
            rows["train" if i < per_class else "validation"].append([name, word])
    column = "label" if task == "label" else "transcript"
    for split, split_rows in rows.items():
        write_csv(root / f"{split}.csv", ["file", column], split_rows)
    return root


def image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (40, 28)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def image_folder(root: Path, held_out: str | None = "test", per_class: int = 4, size=(40, 28)) -> Path:
    """PNG imagefolder ``train/<class>/`` and ``<held_out>/<class>/``; None: flat ``<class>/`` without splits."""
    for name, color in COLORS.items():
        for i in range(per_class + 2):
            shade = tuple(max(0, min(255, v + 4 * i)) for v in color)
            if held_out is None:
                image(root / name / f"{i}.png", shade, size)
            else:
                split = "train" if i < per_class else held_out
                image(root / split / name / f"{i}.png", shade, size)
    return root


def retrieval_folder(root: Path, images: int = 6, held_out: int = 2) -> Path:
    """images/ and train.csv/validation.csv of ``image_path,caption`` (two captions per image)."""
    rows: dict[str, list[list[str]]] = {"train": [], "validation": []}
    for i in range(images + held_out):
        color = "red" if i % 2 == 0 else "blue"
        path = f"images/{i}.png"
        image(root / path, COLORS[color], (36, 36))
        split = "train" if i < images else "validation"
        rows[split] += [[path, f"a {color} square"], [path, f"picture number {i}, all {color}"]]
    for split, split_rows in rows.items():
        write_csv(root / f"{split}.csv", ["image_path", "caption"], split_rows)
    return root


def listing(root: Path) -> set[str]:
    """Every file under ``root``, to check that nothing was written."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}
