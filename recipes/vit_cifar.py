"""Bottleneck adapters on a frozen Vision Transformer for CIFAR-10 image classification.

    python recipes/vit_cifar.py --preset demo            # bundled 1,000/500-image CIFAR-10 subset, demo-vit
    python recipes/vit_cifar.py --preset full            # google/vit-base-patch16-224-in21k + uoft-cs/cifar10

``--data`` also takes an image folder with ``train/<class>/`` and ``test/<class>/``. Outputs (in --output-dir):
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
)
from mm_adapters.lightning import ClassificationModule

SPLITS = {"train": "train", "val": "test"}


@dataclass
class Config(runner.ClassificationConfig):
    """The common options (see configs/vit_cifar/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, list[str]]:
    """Train and test splits of an image-folder or hub data set, transformed for the backbone."""
    source = cifar10_dir() if config.data == "bundled:cifar10" else config.data
    train = load_hub_or_local(source, SPLITS["train"])
    val = load_hub_or_local(source, SPLITS["val"])
    image_column = "image" if "image" in train.column_names else "img"
    names = label_names(train)
    transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std)
    collate = ImageClassificationCollator(transform, image_column=image_column, num_classes=len(names))
    return runner.datamodule(config, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    run = runner.start(Config, load_data, argv, adapter="cifar10")
    datamodule, names = run.data
    config = run.config
    module = ClassificationModule(
        run.backbone, len(names), lr=config.lr, warmup_steps=config.warmup_steps, class_names=names,
        prefix_cache=config.prefix_cache,
    )  # fmt: skip
    trainer = run.trainer()
    run.fit(trainer, module, datamodule)
    return run.write(run.evaluate(trainer, module, datamodule))


if __name__ == "__main__":
    main()
