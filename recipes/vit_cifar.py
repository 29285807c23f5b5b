"""Bottleneck adapters on a frozen Vision Transformer for CIFAR-10 image classification.

    python recipes/vit_cifar.py --preset demo            # bundled 1,000/500-image CIFAR-10 subset, demo-vit
    python recipes/vit_cifar.py --preset full            # google/vit-base-patch16-224-in21k + uoft-cs/cifar10
    python recipes/vit_cifar.py --data my_photos/ --output-dir runs/photos   # train/<class>/ + validation/<class>/

``--data FOLDER`` trains on your own images: ``train/<class>/`` with ``validation/<class>/`` (or ``val/``, ``test/``),
a flat ``<class>/`` folder with ``--val-fraction``, or train.csv + validation.csv of image,label. Outputs (in --output-dir):
metrics.json, adapter/ (adapter + head), checkpoints/last.ckpt (trainable state only), logs/metrics.csv,
curves.png, confusion_matrix.png. Presets: configs/vit_cifar/{demo,full}.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.data import (
    AdapterDataModule,
    ImageClassificationCollator,
    ImageTransform,
    cifar10_dir,
    label_names,
    load_hub_or_local,
    shared_class_labels,
)

SPLITS = {"train": "train", "val": "test"}


@dataclass
class Config(runner.ClassificationConfig, runner.ImageColumns):
    """The common options and the columns of a local table (see configs/vit_cifar/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, list[str]]:
    """A local image folder or table (the local-data contract), the bundled CIFAR-10 subset, or a hub data set;
    transformed for the backbone."""
    if runner.is_local(config.data):
        local = runner.load_local(config, "image")
        train, val, names, image_column = local.train, local.validation, local.class_names, "image"
    else:
        source = cifar10_dir() if config.data == "bundled:cifar10" else config.data
        splits = {split: load_hub_or_local(source, name) for split, name in SPLITS.items()}
        train, val = shared_class_labels(splits, "label").values()
        image_column = "image" if "image" in train.column_names else "img"
        names = label_names(train)
    transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std)
    collate = ImageClassificationCollator(transform, image_column=image_column, num_classes=len(names))
    return runner.datamodule(config, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return runner.train_classifier(Config, load_data, argv, adapter="cifar10")


if __name__ == "__main__":
    main()
