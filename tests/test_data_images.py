"""Image folders and the image transform: any mode and size in, normalised RGB at the backbone's size out."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mm_adapters.data import (
    ImageClassificationCollator,
    ImageTransform,
    label_names,
    load_image_folder,
    to_rgb,
)

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def save_image(path: Path, mode: str, size: tuple[int, int], value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new(mode, size, value if mode in ("L", "P") else (value,) * len(mode))
    image.save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    save_image(root / "train" / "cat" / "rgb.jpg", "RGB", (40, 30))
    save_image(root / "train" / "cat" / "gray.png", "L", (17, 64))
    save_image(root / "train" / "dog" / "rgba.png", "RGBA", (8, 8))
    save_image(root / "train" / "dog" / "palette.png", "P", (100, 3))
    save_image(root / "test" / "cat" / "a.png", "RGB", (5, 5))
    save_image(root / "test" / "dog" / "b.png", "RGB", (5, 5))
    return root


def test_image_folder_loads_and_collates_to_contract(image_folder: Path, tmp_path: Path) -> None:
    dataset = load_image_folder(image_folder, "train", cache_dir=str(tmp_path / "cache"))
    assert len(dataset) == 4
    assert label_names(dataset) == ["cat", "dog"]
    collate = ImageClassificationCollator(ImageTransform(24, MEAN, STD), num_classes=2)
    batch = collate([{**dataset[i], "index": i} for i in range(len(dataset))])
    assert set(batch) == {"pixel_values", "labels", "index"}
    assert batch["pixel_values"].shape == (4, 3, 24, 24) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long and sorted(batch["labels"].tolist()) == [0, 0, 1, 1]
    assert batch["index"].tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_every_mode_becomes_normalised_rgb(mode: str) -> None:
    white = Image.new(mode, (13, 7), 255 if mode in ("L", "P") else (255,) * len(mode))
    if mode == "P":
        white.putpalette([255, 255, 255] * 256)
    pixels = ImageTransform((16, 20), MEAN, STD)(white)
    assert pixels.shape == (3, 16, 20)
    torch.testing.assert_close(pixels, torch.full_like(pixels, (1.0 - 0.5) / 0.25))


def test_crop_mode_keeps_aspect_and_reaches_size() -> None:
    wide = np.zeros((10, 40, 3), dtype=np.uint8)
    wide[:, 18:22] = 255  # a centre stripe: kept by a centre crop, the black sides are cut
    pixels = ImageTransform(10, (0.0,) * 3, (1.0,) * 3, crop=True)(wide)
    assert pixels.shape == (3, 10, 10)
    assert pixels[:, :, 4:6].min() > 0.9 and pixels[:, :, 0].max() < 0.1


def test_to_rgb_reads_paths(tmp_path: Path) -> None:
    save_image(tmp_path / "g.png", "L", (3, 4), value=7)
    image = to_rgb(tmp_path / "g.png")
    assert image.mode == "RGB" and image.size == (3, 4) and image.getpixel((0, 0)) == (7, 7, 7)


def make_missing(root: Path) -> Path:
    return root / "nowhere"


def make_empty(root: Path) -> Path:
    (root / "empty" / "cat").mkdir(parents=True)  # a class folder without images
    return root / "empty"


def make_one_class(root: Path) -> Path:
    save_image(root / "one" / "cat" / "a.png", "RGB", (4, 4))
    return root / "one"


def make_loose(root: Path) -> Path:
    save_image(root / "loose" / "a.png", "RGB", (4, 4))
    save_image(root / "loose" / "cat" / "b.png", "RGB", (4, 4))
    save_image(root / "loose" / "dog" / "c.png", "RGB", (4, 4))
    return root / "loose"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (make_missing, "does not exist"),
        (make_empty, "no class subfolders"),
        (make_one_class, "only one class"),
        (make_loose, "outside class subfolders"),
    ],
)
def test_bad_image_folders_say_what_to_do(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        load_image_folder(make(tmp_path))
    assert "<class name>" in str(error.value)


def test_missing_split_lists_the_splits(image_folder: Path) -> None:
    with pytest.raises(ValueError, match=r"found \['test', 'train'\]"):
        load_image_folder(image_folder, "validation")
    with pytest.raises(
        ValueError, match=r"split folders \['test', 'train'\], not classes; pass split='test'"
    ):
        load_image_folder(image_folder)
