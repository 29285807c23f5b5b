"""Bottleneck adapters on a frozen Vision Transformer for CIFAR-10 image classification.

    python recipes/vit_cifar.py --preset demo            # bundled 1,000/500-image CIFAR-10 subset, demo-vit
    python recipes/vit_cifar.py --preset full            # google/vit-base-patch16-224-in21k + uoft-cs/cifar10

Outputs (in --output-dir): metrics.json, adapter/ (adapter + head), checkpoints/last.ckpt (trainable state only),
logs/metrics.csv, curves.png, confusion_matrix.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import classify  # noqa: E402
import common  # noqa: E402
from lightning import LightningDataModule  # noqa: E402

from mm_adapters.backbones import Backbone  # noqa: E402
from mm_adapters.data import (  # noqa: E402
    ImageClassificationCollator,
    ImageTransform,
    cifar10_dir,
    label_names,
    load_hub_or_local,
)

PRESETS = {
    "demo": common.Preset(
        backbone="demo-vit", data="bundled:cifar10", max_epochs=15, batch_size=32, lr=3e-3, reduction_factor=4
    ),
    "full": common.Preset(
        backbone="google/vit-base-patch16-224-in21k", data="uoft-cs/cifar10", max_epochs=3, batch_size=64, lr=1e-3,
        warmup_steps=100,
    ),
}  # fmt: skip
SPLITS = {"train": "train", "val": "test"}


def load_data(settings: common.Settings, backbone: Backbone) -> tuple[LightningDataModule, list[str]]:
    """Train and test splits of an image-folder or hub data set, transformed for the backbone."""
    source = cifar10_dir() if settings.data == "bundled:cifar10" else settings.data
    train = load_hub_or_local(source, SPLITS["train"])
    val = load_hub_or_local(source, SPLITS["val"])
    image_column = "image" if "image" in train.column_names else "img"
    names = label_names(train)
    transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std)
    collate = ImageClassificationCollator(transform, image_column=image_column, num_classes=len(names))
    return common.datamodule(settings, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return classify.run(__doc__, "vit_cifar", PRESETS, load_data, "cifar10", argv)


if __name__ == "__main__":
    main()
