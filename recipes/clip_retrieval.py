"""Bottleneck adapters in both towers of a frozen CLIP model for image-text retrieval.

    python recipes/clip_retrieval.py --preset demo     # bundled 80/79-image COCO subset (5 captions each), demo-clip
    python recipes/clip_retrieval.py --preset full     # open_clip ViT-B-32 (laion2b_s34b_b79k) + COCO 2017 captions
    python recipes/clip_retrieval.py --data my_pairs/ --output-dir runs/pairs   # images + image_path,caption CSVs

Reports recall@1/5/10 (image->text and text->image) on the validation images before training (zero-shot) and
after, and the same on the first 400 training captions ("seen images": with the random demo backbone, nothing
carries over to unseen images, but these show that the adapters learn).

``--variant`` picks the adapters: ``separate`` (a bottleneck adapter in each tower, the default), ``shared`` (the
towers' adapters share a middle projection, MMA/UniAdapter; the towers still run independently) or ``feature``
(CLIP-Adapter: no adapters in the towers, a residual MLP on each tower's final embedding). ``--compare-variants``
trains all three with the same data, seed and steps (outputs in <output-dir>/<variant>/) and prints one table,
also written to <output-dir>/metrics.json.

Full data is a COCO 2017 folder (``train2017/``, ``val2017/`` and ``captions_{train,val}2017.json`` in it or in
``annotations/``), downloaded from cocodataset.org; pass it with --data. Your own pairs: ``--data FOLDER`` with
images and train.csv + validation.csv of image_path,caption (paths relative to the table; several captions per
image share it). Presets: configs/clip_retrieval/{demo,full}.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch.utils.data import DataLoader

import mm_adapters
from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.composition import FeatureAdapter, add_cross_modal_adapter
from mm_adapters.composition.cross_modal import embedding_dim
from mm_adapters.data import (
    AdapterDataModule,
    CaptionFiles,
    ImageTransform,
    IndexedDataset,
    RetrievalCollator,
    coco_mini,
    load_coco_captions,
)
from mm_adapters.lightning import RetrievalModule

SEEN_ROWS = 400  # training captions re-scored before and after training ("seen" images)
VARIANTS = ("separate", "shared", "feature")
ADAPTER_NAME = "retrieval"
FEATURE_REDUCTION = 4  # CLIP-Adapter's bottleneck: embedding width / 4


@dataclass
class Config(runner.RecipeConfig, runner.CaptionColumns):
    """The common options, the columns of a local table, the adapter variant and the comparison of all three."""

    variant: Literal["separate", "shared", "feature"] = runner.option(
        "separate",
        "separate: an adapter per tower; shared: the towers' adapters share a middle projection; feature: "
        "CLIP-Adapter on the final embeddings, towers untouched.",
    )
    compare_variants: bool = runner.option(
        False, "Train every variant (same data, seed and steps) and print one comparison table."
    )


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


def is_coco_folder(data: str) -> bool:
    """A COCO 2017 download (``train2017/`` + caption json) rather than a folder in the local-data contract."""
    return (Path(data).expanduser() / "train2017").is_dir()


def load_data(config: Config, backbone: Backbone) -> AdapterDataModule:
    """Caption rows (one per caption, with its image id) for train and validation: a local folder of images and
    (image_path, caption) tables (the local-data contract), the bundled COCO subset, or a COCO 2017 download."""
    if runner.is_local(config.data) and not is_coco_folder(config.data):
        local = runner.load_local(config, "retrieval")
        train, val = local.train, local.validation
    else:
        train, val = (load_coco_captions(*caption_files(config.data, split)) for split in ("train", "val"))
    transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std, crop=True)
    collate = RetrievalCollator(transform, backbone.tokenizer, max_length=backbone.max_length)
    return runner.datamodule(config, train, val, collate)


def seen_images(datamodule: AdapterDataModule) -> DataLoader:
    """The first training captions, in order: recall on them shows what the adapters learned even where a demo
    backbone cannot generalise to unseen validation images."""
    rows = datamodule.train.select(range(min(SEEN_ROWS, len(datamodule.train))))
    return DataLoader(
        IndexedDataset(rows), batch_size=datamodule.batch_size, collate_fn=datamodule.val_collate_fn
    )


def main(argv: list[str] | None = None) -> dict:
    config = runner.parse_config(Config, argv)
    if config.compare_variants and config.method != "adapter":
        raise SystemExit("error: --compare-variants compares adapter variants; drop it or --method.")
    if config.compare_variants:
        return compare_variants(config)
    return run_variant(config)


def run_variant(config: Config) -> dict:
    """Train and evaluate one adapter variant; returns its metrics.json report."""
    run = runner.start(Config, load_data, adapter=ADAPTER_NAME, config=config)
    module = build_module(run, config.variant)
    datamodule, seen = run.data, seen_images(run.data)
    trainer = run.trainer()
    before = {}
    if run.resume is None:  # zero-shot: the backbone before any adapter training
        before = {
            "zero_shot_metrics": _rounded(trainer.validate(module, datamodule=datamodule, verbose=False)[0]),
            "seen_images_before": _rounded(module.evaluate_recall(seen)),
        }
    run.fit(trainer, module, datamodule)
    report = run.evaluate(trainer, module, datamodule)
    report.update(variant=config.variant, **before, seen_images_after=_rounded(module.evaluate_recall(seen)))
    return run.write(report)


def build_module(run: runner.Run, variant: str) -> RetrievalModule:
    """Swap the separate adapter ``runner.start`` added for the chosen variant, then build the module."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    config, model = run.config, run.backbone.model
    feature_adapters = None
    if config.method != "adapter" and variant != "separate":
        raise SystemExit(
            f"error: --variant {variant} chooses where adapters go; --method {config.method} trains no adapters. "
            "Leave --variant at separate."
        )
    if config.method == "probe":  # no classifier here: the head is CLIP-Adapter's embedding adapters
        feature_adapters = feature_heads(model)
    elif variant != "separate" and run.adapter_name is not None:
        adapter_config = mm_adapters.list_adapters(model)[run.adapter_name]
        mm_adapters.delete_adapter(model, run.adapter_name)
        if variant == "shared":
            add_cross_modal_adapter(model, run.adapter_name, adapter_config, share="middle")
        else:
            model.requires_grad_(False)
            feature_adapters = feature_heads(model)
            run.adapter_name = None  # nothing inside the towers: the report says adapter None
    return RetrievalModule(
        run.backbone, lr=config.lr, warmup_steps=config.warmup_steps, feature_adapters=feature_adapters
    )


def feature_heads(model) -> dict[str, FeatureAdapter]:
    """CLIP-Adapter's residual MLP on each tower's final embedding."""
    dim = embedding_dim(model)
    return {tower: FeatureAdapter(dim, reduction_factor=FEATURE_REDUCTION) for tower in ("image", "text")}


def compare_variants(config: Config) -> dict:
    """Train every variant into <output-dir>/<variant>/ and write one table to <output-dir>/metrics.json."""
    started = time.perf_counter()
    root = Path(config.output_dir)
    reports = {variant: run_variant(variant_config(config, variant, root / variant)) for variant in VARIANTS}
    rows = [comparison_row(variant, report) for variant, report in reports.items()]
    table = format_table(rows)
    print(f"\n{table}\n", flush=True)
    summary = {
        "recipe": "clip_retrieval",
        "compare_variants": rows,
        "table": table,
        "runs": {variant: str(root / variant) for variant in reports},
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary


def variant_config(config: Config, variant: str, output_dir: Path) -> Config:
    """``config`` for one variant, keeping what the command line set (for the local-data schedule)."""
    changed = dataclasses.replace(config, variant=variant, output_dir=output_dir)
    changed.explicit_fields = getattr(config, "explicit_fields", set())
    return changed


def comparison_row(variant: str, report: dict) -> dict:
    """One table row: trainable parameters, validation recall after training, mean recall before/after."""
    after, before = report["metrics"], report.get("zero_shot_metrics", {})
    row = {"variant": variant, "trainable_params": report["trainable_params"]}
    for direction in ("i2t", "t2i"):
        for k in (1, 5, 10):
            row[f"{direction}_R@{k}"] = after.get(f"val_{direction}_recall@{k}")
    row["val_mean_before"] = before.get("val_mean_recall")
    row["val_mean_after"] = after.get("val_mean_recall")
    row["seen_mean_before"] = report.get("seen_images_before", {}).get("mean_recall")
    row["seen_mean_after"] = report.get("seen_images_after", {}).get("mean_recall")
    return row


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (recalls in percent)."""
    columns = list(rows[0])
    widths = {c: max(len(c), 9) for c in columns}

    def cell(column: str, value) -> str:
        if isinstance(value, float):
            text = f"{100 * value:.1f}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = "-" if value is None else str(value)
        return text.rjust(widths[column])

    lines = ["  ".join(c.rjust(widths[c]) for c in columns)]
    lines += ["  ".join(cell(c, row[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 6) for key, value in metrics.items()}


if __name__ == "__main__":
    main()
