"""Bottleneck adapters in both towers of a frozen CLIP model for image-text retrieval.

    python recipes/clip_retrieval.py --preset demo     # bundled 80/79-image COCO subset (5 captions each), demo-clip
    python recipes/clip_retrieval.py --preset full     # open_clip ViT-B-32 (laion2b_s34b_b79k) + COCO 2017 captions

Reports recall@1/5/10 (image->text and text->image) on the validation images before training (zero-shot) and
after, and the same on the first 400 training captions ("seen images": with the random demo backbone, nothing
carries over to unseen images, but these show that the adapters learn).

Full data is a COCO 2017 folder (``train2017/``, ``val2017/`` and ``captions_{train,val}2017.json`` in it or in
``annotations/``), downloaded from cocodataset.org; pass it with --data.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import lightning as L  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from mm_adapters.backbones import Backbone  # noqa: E402
from mm_adapters.data import (  # noqa: E402
    CaptionFiles,
    ImageTransform,
    IndexedDataset,
    RetrievalCollator,
    coco_mini,
    load_coco_captions,
)
from mm_adapters.lightning import RetrievalModule  # noqa: E402

PRESETS = {
    "demo": common.Preset(
        backbone="demo-clip", data="bundled:coco_mini", max_epochs=12, batch_size=32, lr=1e-2, reduction_factor=4
    ),
    "full": common.Preset(
        backbone="ViT-B-32", pretrained="laion2b_s34b_b79k", data="coco2017", max_epochs=2, batch_size=128, lr=5e-4,
        warmup_steps=200,
    ),
}  # fmt: skip
SEEN_ROWS = 400  # training captions re-scored before and after training ("seen" images)


def caption_files(data: str, split: str) -> CaptionFiles:
    """Images folder and caption json of a split: the bundled subset, or a COCO 2017 download."""
    if data == "bundled:coco_mini":
        return coco_mini(split)
    root = Path(data).expanduser()
    coco_split = {"train": "train2017", "val": "val2017"}[split]
    for captions in (
        root / f"captions_{coco_split}.json",
        root / "annotations" / f"captions_{coco_split}.json",
    ):
        if captions.is_file() and (root / coco_split).is_dir():
            return CaptionFiles(root / coco_split, captions)
    raise FileNotFoundError(
        f"No COCO 2017 {split} split under {root}: expected {coco_split}/ and captions_{coco_split}.json (or "
        "annotations/captions_...json). Download COCO 2017 images and annotations from cocodataset.org and pass "
        "the folder with --data, or run --preset demo."
    )


def load_data(settings: common.Settings, backbone: Backbone) -> L.LightningDataModule:
    """Caption rows (one per caption, with its image id) for train and validation."""
    train, val = (load_coco_captions(*caption_files(settings.data, split)) for split in ("train", "val"))
    transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std, crop=True)
    collate = RetrievalCollator(transform, backbone.tokenizer, max_length=backbone.max_length)
    return common.datamodule(settings, train, val, collate)


def seen_images(datamodule: L.LightningDataModule) -> DataLoader:
    """The first training captions, in order: recall on them shows what the adapters learned even where a demo
    backbone cannot generalise to unseen validation images."""
    rows = datamodule.train.select(range(min(SEEN_ROWS, len(datamodule.train))))
    return DataLoader(
        IndexedDataset(rows), batch_size=datamodule.batch_size, collate_fn=datamodule.val_collate_fn
    )


def main(argv: list[str] | None = None) -> dict:
    args = common.build_parser(__doc__, PRESETS).parse_args(argv)
    prepared = common.prepare(args, "clip_retrieval", PRESETS, load_data, adapter_name="retrieval")
    settings = prepared.settings
    module = RetrievalModule(prepared.backbone, lr=settings.lr, warmup_steps=settings.warmup_steps)
    seen = seen_images(prepared.data)

    def zero_shot(trainer: L.Trainer) -> dict:
        if settings.resume:
            return {}
        metrics = trainer.validate(module, datamodule=prepared.data, verbose=False)[0]
        return {
            "zero_shot_metrics": {k: round(float(v), 6) for k, v in metrics.items()},
            "seen_images_before": _rounded(module.evaluate_recall(seen)),
        }

    def after(output_dir: Path) -> dict:
        return {"seen_images_after": _rounded(module.evaluate_recall(seen))}

    return common.train_and_report(
        prepared, module, prepared.data, before_fit=zero_shot, after_validate=after
    )


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 6) for key, value in metrics.items()}


if __name__ == "__main__":
    main()
