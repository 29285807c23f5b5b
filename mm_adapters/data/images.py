"""Image data: class-per-folder datasets through `datasets`' imagefolder, and the backbone's image transform."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, load_dataset
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLIT_NAMES = frozenset({"train", "training", "test", "testing", "val", "valid", "validation", "dev", "eval"})


def _has_images(folder: Path) -> bool:
    return any(path.suffix.lower() in IMAGE_EXTENSIONS for path in folder.rglob("*") if path.is_file())


def check_image_folder(root: Path) -> list[str]:
    """Class names of a `root/<class>/<image>` folder; ValueError when it is missing, empty or has one class."""
    layout = f"Expected layout: {root}/<class name>/<image>.jpg with one subfolder per class."
    if not root.is_dir():
        raise ValueError(f"Image folder {root} does not exist. {layout}")
    loose = [
        path.name for path in root.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if loose:
        raise ValueError(f"Image folder {root} has images outside class subfolders ({loose[:3]}). {layout}")
    classes = sorted(path.name for path in root.iterdir() if path.is_dir() and _has_images(path))
    if not classes:
        raise ValueError(f"Image folder {root} has no class subfolders with images. {layout}")
    if len(classes) == 1:
        raise ValueError(
            f"Image folder {root} has only one class ({classes[0]!r}); classification needs at least two. "
            f"Add a subfolder per class. {layout}"
        )
    return classes


def load_image_folder(data_dir: str | Path, split: str | None = None, **load_kwargs: Any) -> Dataset:
    """`data_dir[/split]/<class>/<image>` -> Dataset with `image` (Image) and `label` (ClassLabel, sorted
    folder names), loaded by `load_dataset("imagefolder")`; `load_kwargs` go to it (e.g. cache_dir)."""
    root = Path(data_dir)
    if split is not None:
        if not (root / split).is_dir():
            found = sorted(path.name for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
            raise ValueError(f"Split folder {root / split} does not exist (found {found}); pass one of them.")
        root = root / split
    classes = check_image_folder(root)
    splits = sorted(SPLIT_NAMES.intersection(classes))
    if splits:
        raise ValueError(f"{root} holds split folders {splits}, not classes; pass split={splits[0]!r}.")
    return load_dataset("imagefolder", data_dir=str(root), split="train", **load_kwargs)


def to_rgb(image: Any) -> Image.Image:
    """An RGB PIL image from a PIL image, a path, a {"bytes"|"path"} dict or an H x W (x C) uint8 array."""
    if isinstance(image, (str, Path)):
        return _open_rgb(image, str(image))
    if isinstance(image, dict):
        source = io.BytesIO(image["bytes"]) if image.get("bytes") else image["path"]
        return _open_rgb(source, image.get("path") or "image bytes")
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"Cannot read an image from {type(image).__name__}; pass a PIL image, path or array.")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # palette transparency is only honoured through RGBA
    return image.convert("RGB")


def _open_rgb(source: Any, name: str) -> Image.Image:
    try:
        with Image.open(source) as opened:
            return to_rgb(opened)
    except (UnidentifiedImageError, OSError) as error:  # not an image, truncated, or missing
        raise ValueError(
            f"Cannot read image {name} ({error}); remove it from the data set or convert it to PNG or JPEG."
        ) from error


@dataclass
class ImageTransform:
    """Any image -> normalised float tensor 3 x H x W at the backbone's size (pass its size, mean and std)."""

    image_size: int | tuple[int, int]
    mean: Sequence[float] = (0.5, 0.5, 0.5)
    std: Sequence[float] = (0.5, 0.5, 0.5)
    crop: bool = False
    """Resize the shorter side and centre-crop (CLIP style) instead of resizing to the exact size (ViT style)."""
    augment: bool = False
    """Random resized crop and horizontal flip, for training only; a frozen-prefix feature cache cannot be used."""
    interpolation: v2.InterpolationMode = v2.InterpolationMode.BICUBIC
    _pipeline: v2.Compose = field(init=False, repr=False)

    def __post_init__(self) -> None:
        size = (
            (self.image_size, self.image_size) if isinstance(self.image_size, int) else tuple(self.image_size)
        )
        if self.augment:
            geometry = [
                v2.RandomResizedCrop(size, interpolation=self.interpolation, antialias=True),
                v2.RandomHorizontalFlip(),
            ]
        elif self.crop:
            geometry = [
                v2.Resize(min(size), interpolation=self.interpolation, antialias=True),
                v2.CenterCrop(size),
            ]
        else:
            geometry = [v2.Resize(size, interpolation=self.interpolation, antialias=True)]
        self._pipeline = v2.Compose(
            [
                v2.ToImage(),
                *geometry,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )

    def __call__(self, image: Any) -> torch.Tensor:
        return self._pipeline(to_rgb(image))
