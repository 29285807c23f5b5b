"""AdapterFusion (Pfeiffer et al. 2021) on a frozen text encoder: a sentiment and a topic adapter, fused for one task.

    python recipes/fusion_multitask.py --preset demo                  # all-MiniLM-L6-v2 (packaged), bundled data
    python recipes/fusion_multitask.py --preset demo --target agnews  # fuse for topic classification instead
    python recipes/fusion_multitask.py --preset full                  # bert-base-uncased, GLUE SST-2 + AG News (Hub)

Stage 1 trains one Pfeiffer adapter and its own head per task, each alone: SST-2 sentiment and AG News topic.
Stage 2 freezes the backbone and both adapters and trains only the fusion layers and a new head on the --target
task. Baseline for the other task's adapter: a new target head on it, trained alone (head only, adapter frozen).
The table at the end compares the target task's validation accuracy and the trainable parameters of each setup.

Outputs (in --output-dir): metrics.json, fusion_weights.png (fusion attention, tokens x adapters per layer, on a
few validation sentences), adapters/<task>/ (adapter + its head), fusion/ (fusion layers + target head), and per
stage stages/<stage>/{logs/metrics.csv, curves.png, checkpoints/last.ckpt}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from plots import plot_curves  # noqa: E402

import mm_adapters  # noqa: E402
from mm_adapters.backbones import Backbone, BackboneNotFoundError, backbone_available, load_backbone  # noqa: E402
from mm_adapters.data import (  # noqa: E402
    SST2_LABEL_NAMES,
    DatasetUnavailableError,
    TextClassificationCollator,
    agnews_tsv,
    label_names,
    load_hub_or_local,
    load_text_table,
    sst2_tsv,
    to_class_labels,
)
from mm_adapters.lightning import ClassificationModule  # noqa: E402
from mm_adapters.reliability import NonFiniteLossError  # noqa: E402

RECIPE = "fusion_multitask"
FUSION = "fusion"


@dataclass(frozen=True)
class TaskSource:
    """Where one task's sentences come from: the bundled TSVs or a Hub data set."""

    description: str
    bundled: Callable[[str], Path]
    label_names: tuple[str, ...] | None
    hub: str
    hub_config: str | None
    hub_splits: tuple[str, str]
    """Train and validation split names on the Hub."""
    hub_text: str


TASKS = {
    "sst2": TaskSource("sentiment", sst2_tsv, SST2_LABEL_NAMES, "nyu-mll/glue", "sst2", ("train", "validation"), "sentence"),
    "agnews": TaskSource("topic", agnews_tsv, None, "fancyzhx/ag_news", None, ("train", "test"), "text"),
}  # fmt: skip


@dataclass(frozen=True)
class FusionPreset(common.Preset):
    """The shared recipe defaults plus what the fusion stage and the data caps need."""

    fusion_max_steps: int = -1
    """Optimizer steps of stage 2 and of the head-only baseline; -1 = no limit."""
    fusion_lr: float = 2e-3
    fusion_regularization: float = 0.01
    """Weight of ``||W_value - I||^2`` in the stage-2 loss (AdapterHub's 0.01)."""
    train_limit: int = 0
    """Training rows per task (a seeded random subset); 0 = all."""
    val_limit: int = 0
    """Validation rows per task (a fixed random subset); 0 = all."""
    max_length: int = 128
    heatmap_sentences: int = 3


@dataclass(frozen=True)
class FusionSettings(FusionPreset):
    """A preset with the command-line overrides applied."""

    preset: str = "demo"
    target: str = "sst2"
    output_dir: Path = Path("runs") / RECIPE
    seed: int = 0
    precision: str = "32-true"


PRESETS = {
    "demo": FusionPreset(
        backbone="minilm", data="bundled", max_epochs=1, max_steps=30, fusion_max_steps=20, batch_size=32, lr=2e-3,
        fusion_lr=2e-3, max_length=64,
    ),
    "full": FusionPreset(
        backbone="bert-base-uncased", data="hub", max_epochs=3, max_steps=4000, fusion_max_steps=2000, batch_size=32,
        lr=5e-4, fusion_lr=5e-4, warmup_steps=200, max_length=128,
    ),
}  # fmt: skip


@dataclass
class TaskData:
    """One task's datasets, class names and collate function."""

    task: str
    train: Dataset
    val: Dataset
    names: list[str]
    collate: TextClassificationCollator


@dataclass
class StageResult:
    """What one training stage left: validation metrics, parameter counts and its files."""

    metrics: dict[str, float]
    trainable_params: int
    total_params: int
    steps: int
    curves_png: str
    checkpoint: str
    device: str
    wall_time_s: float
    """Training and validation of this stage."""


# -- command line and settings --------------------------------------------------------------------------------------
PRESET_OPTIONS: dict[str, tuple[type, str]] = {
    "backbone": (str, "Backbone: demo name, hub id or local save_pretrained folder"),
    "placement": (str, "Adapter placement"),
    "reduction_factor": (float, "Hidden size / bottleneck size"),
    "layers": (str, 'Layers with adapters: "all", "last:K" or "0,1,5"'),
    "max_steps": (int, "Optimizer steps of each stage-1 adapter; -1 = no limit"),
    "max_epochs": (int, "Epoch limit of every stage"),
    "fusion_max_steps": (int, "Optimizer steps of stage 2 and of the head-only baseline; -1 = no limit"),
    "batch_size": (int, "Batch size"),
    "lr": (float, "AdamW learning rate of stage 1"),
    "fusion_lr": (float, "AdamW learning rate of stage 2 and of the baseline"),
    "fusion_regularization": (float, "Weight of ||W_value - I||^2 in the stage-2 loss"),
    "warmup_steps": (int, "Linear warm-up steps before cosine decay"),
    "train_limit": (int, "Training rows per task (seeded random subset); 0 = all"),
    "val_limit": (int, "Validation rows per task (fixed random subset); 0 = all"),
    "max_length": (int, "Tokens per sentence; longer ones are truncated"),
    "heatmap_sentences": (int, "Validation sentences in the fusion heatmap"),
}
"""Options whose default comes from the preset: field -> (type, help)."""


def build_parser() -> argparse.ArgumentParser:
    """Every option; preset-dependent ones show the preset's values in --help."""
    demo, full = PRESETS["demo"], PRESETS["full"]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--preset",
        choices=("auto", "demo", "full"),
        default="auto",
        help="full: bert-base-uncased and the Hub data sets; demo: the packaged all-MiniLM-L6-v2 and the bundled "
        "SST-2/AG News subsets, offline; auto: full when available, else demo (with a banner). Default: auto.",
    )
    add(
        "--target",
        choices=tuple(TASKS),
        default="sst2",
        help="Task the fusion is trained for (default: sst2).",
    )
    for field, (kind, text) in PRESET_OPTIONS.items():
        add(
            f"--{field.replace('_', '-')}",
            type=kind,
            choices=common.PLACEMENTS if field == "placement" else None,
            help=f"{text} (demo: {getattr(demo, field)}, full: {getattr(full, field)}).",
        )
    add("--output-dir", type=Path, help=f"Where the run writes its outputs (default: runs/{RECIPE}).")
    add(
        "--seed",
        type=int,
        default=0,
        help="Seed for adapter, fusion and head weights and data order (default: 0).",
    )
    add(
        "--precision",
        default="auto",
        help='Lightning precision; "auto" = bf16-mixed on a GPU with bf16, else 32-true (default: auto).',
    )
    return parser


def resolve_settings(args: argparse.Namespace, preset: str) -> FusionSettings:
    """The preset's defaults with every option given on the command line applied."""
    base = dataclasses.asdict(PRESETS[preset])
    overrides = {field: getattr(args, field) for field in base if getattr(args, field, None) is not None}
    precision = args.precision
    if precision == "auto":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = "bf16-mixed" if bf16 else "32-true"
    return FusionSettings(
        **{**base, **overrides},
        preset=preset,
        target=args.target,
        output_dir=args.output_dir or Path("runs") / RECIPE,
        seed=args.seed,
        precision=precision,
    )


def load_everything(args: argparse.Namespace) -> tuple[FusionSettings, Backbone, dict[str, TaskData]]:
    """Settings, backbone and both tasks' data; ``--preset auto`` falls back to demo when full cannot be had."""
    preset = args.preset
    if preset == "auto":
        backbone = args.backbone or PRESETS["full"].backbone
        preset = "full" if backbone_available(backbone) else "demo"
        if preset == "demo":
            common.banner(
                f"--preset auto: the full backbone {backbone!r} is not cached and the Hugging Face Hub is not "
                "reachable (or HF_HUB_OFFLINE=1).\nRunning the DEMO preset instead: the packaged all-MiniLM-L6-v2 "
                "and the bundled SST-2 / AG News subsets."
            )
    settings = resolve_settings(args, preset)
    try:
        return settings, *_load(settings)
    except (BackboneNotFoundError, DatasetUnavailableError, FileNotFoundError) as error:
        if args.preset != "auto" or preset == "demo":
            sys.exit(f"error: {error}")
        common.banner(f"The full preset is not available here ({error}).\nFalling back to the DEMO preset.")
        settings = resolve_settings(args, "demo")
        return settings, *_load(settings)


def _load(settings: FusionSettings) -> tuple[Backbone, dict[str, TaskData]]:
    backbone = load_backbone(settings.backbone, max_length=settings.max_length)
    return backbone, {task: load_task(task, settings, backbone) for task in TASKS}


# -- data -----------------------------------------------------------------------------------------------------------
def load_task(task: str, settings: FusionSettings, backbone: Backbone) -> TaskData:
    """A task's bundled TSVs (``data=bundled``) or Hub splits, capped at ``train_limit`` / ``val_limit`` rows."""
    source = TASKS[task]
    if settings.data == "bundled":
        train = load_text_table(source.bundled("train"), label_names=source.label_names)
        val = load_text_table(source.bundled("validation"), label_names=label_names(train))
    else:
        train, val = (_hub_split(source, split) for split in source.hub_splits)
    names = label_names(train)
    collate = TextClassificationCollator(backbone.tokenizer, backbone.max_length, num_classes=len(names))
    train = _subset(train, settings.train_limit, settings.seed)
    val = _subset(val, settings.val_limit, 0)
    return TaskData(task, train, val, names, collate)


def _hub_split(source: TaskSource, split: str) -> Dataset:
    dataset = load_hub_or_local(source.hub, split, source.hub_config)
    if source.hub_text != "text":
        dataset = dataset.rename_column(source.hub_text, "text")
    return to_class_labels(dataset)


def _subset(dataset: Dataset, limit: int, seed: int) -> Dataset:
    if limit <= 0 or limit >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(limit))


# -- the stages -----------------------------------------------------------------------------------------------------
class FusionClassificationModule(ClassificationModule):
    """Classification whose training loss adds ``regularization * ||W_value - I||^2`` of the fusion layers."""

    def __init__(
        self, backbone: Backbone, num_classes: int, fusion: str, regularization: float, **kwargs: Any
    ):
        super().__init__(backbone, num_classes, **kwargs)
        self.fusion, self.regularization = fusion, regularization

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        penalty = mm_adapters.fusion_regularization_loss(self.backbone.model, self.fusion)
        self.log("train_fusion_penalty", penalty, batch_size=len(batch["labels"]))
        return loss + self.regularization * penalty


def run_stage(
    settings: FusionSettings, stage: str, module: ClassificationModule, data: TaskData, max_steps: int
) -> StageResult:
    """Fit ``module`` on ``data`` for at most ``max_steps`` steps, validate it and plot its curves."""
    started = time.perf_counter()
    output = settings.output_dir / "stages" / stage
    run = common.Settings(
        **{field.name: getattr(settings, field.name) for field in dataclasses.fields(common.Preset)},
        preset=settings.preset,
        recipe=RECIPE,
        output_dir=output,
        seed=settings.seed,
        precision=settings.precision,
    )
    run = dataclasses.replace(run, max_steps=max_steps, lr=module.lr)
    trainable = mm_adapters.count_parameters(module).trainable
    print(f"[{RECIPE}] stage {stage}: {trainable:,} trainable parameters", flush=True)
    trainer = common.make_trainer(run, module.backbone.model)
    datamodule = common.datamodule(run, data.train, data.val, data.collate)
    try:
        trainer.fit(module, datamodule=datamodule)
    except NonFiniteLossError as error:
        sys.exit(f"error: {error}")
    checkpoint = output / "checkpoints" / common.CHECKPOINT_NAME
    trainer.save_checkpoint(checkpoint, weights_only=False)
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    counts = mm_adapters.count_parameters(module)
    return StageResult(
        metrics={key: round(float(value), 6) for key, value in metrics.items()},
        trainable_params=counts.trainable,
        total_params=counts.total,
        steps=trainer.global_step,
        curves_png=str(plot_curves(output / "logs" / "metrics.csv", output / "curves.png")),
        checkpoint=str(checkpoint),
        device=str(trainer.strategy.root_device),
        wall_time_s=round(time.perf_counter() - started, 1),
    )


def train_task_adapter(settings: FusionSettings, backbone: Backbone, data: TaskData) -> StageResult:
    """Stage 1: a new adapter named after the task, trained alone with its own head; saved with that head."""
    L.seed_everything(settings.seed, verbose=False)
    config = mm_adapters.AdapterConfig.preset(
        settings.placement,
        reduction_factor=settings.reduction_factor,
        layers=common.parse_layers(settings.layers),
    )
    mm_adapters.add_adapter(backbone.model, data.task, config)  # the only active and trainable adapter
    module = _classifier(settings, backbone, data, settings.lr)
    result = run_stage(settings, data.task, module, data, settings.max_steps)
    folder = settings.output_dir / "adapters" / data.task
    mm_adapters.save_adapter(backbone.model, data.task, folder, head=module.head, overwrite=True)
    return result


def train_head_on_adapter(
    settings: FusionSettings, backbone: Backbone, adapter: str, data: TaskData
) -> StageResult:
    """Baseline: the frozen ``adapter`` with a new head for ``data``'s task, trained as long as the fusion."""
    L.seed_everything(settings.seed, verbose=False)
    mm_adapters.set_active_adapters(backbone.model, adapter)
    backbone.model.requires_grad_(False)  # the adapter stays as stage 1 left it
    module = _classifier(settings, backbone, data, settings.fusion_lr)
    return run_stage(settings, f"{adapter}_head_for_{data.task}", module, data, settings.fusion_max_steps)


def train_fusion(settings: FusionSettings, backbone: Backbone, data: TaskData) -> StageResult:
    """Stage 2: fusion layers over every task adapter plus a new head; backbone and adapters frozen."""
    L.seed_everything(settings.seed, verbose=False)
    mm_adapters.add_fusion(backbone.model, list(TASKS), name=FUSION)  # activates Fuse(*TASKS)
    module = FusionClassificationModule(
        backbone,
        len(data.names),
        FUSION,
        settings.fusion_regularization,
        lr=settings.fusion_lr,
        warmup_steps=settings.warmup_steps,
        class_names=data.names,
    )
    result = run_stage(settings, FUSION, module, data, settings.fusion_max_steps)
    mm_adapters.save_fusion(
        backbone.model, FUSION, settings.output_dir / FUSION, head=module.head, overwrite=True
    )
    return result


def _classifier(
    settings: FusionSettings, backbone: Backbone, data: TaskData, lr: float
) -> ClassificationModule:
    return ClassificationModule(
        backbone, len(data.names), lr=lr, warmup_steps=settings.warmup_steps, class_names=data.names
    )


# -- fusion heatmap, table, report ----------------------------------------------------------------------------------
def write_heatmap(settings: FusionSettings, backbone: Backbone, data: TaskData) -> dict[str, Any]:
    """Fusion attention on the first validation sentences (their real tokens one after another, padding left out)
    as a PNG, and each layer's mean weight per adapter over those tokens."""
    count = min(max(1, settings.heatmap_sentences), len(data.val))
    rows = [dict(data.val[i], index=i) for i in range(count)]
    device = next(backbone.parameters()).device
    batch = {key: value.to(device) for key, value in data.collate(rows).items()}
    adapters = mm_adapters.list_fusions(backbone.model)[FUSION]
    backbone.eval()
    with torch.no_grad(), mm_adapters.record_fusion_weights(backbone.model, FUSION) as weights:
        backbone(batch)
    real = batch["attention_mask"].bool()
    per_token = {
        key: torch.cat([w[i][real[i]] for i in range(len(rows))]).float() for key, w in weights.items()
    }
    png = mm_adapters.plot_fusion_weights(per_token, settings.output_dir / "fusion_weights.png", adapters)
    means = {
        f"{tower}.{layer}.{site}": dict(zip(adapters, [round(v, 4) for v in w.mean(0).tolist()], strict=True))
        for (tower, layer, site), w in sorted(per_token.items())
    }
    return {
        "fusion_weights_png": str(png),
        "heatmap_sentences": [row["text"] for row in rows],
        "heatmap_tokens": int(real.sum()),
        "mean_fusion_weights": means,
    }


def comparison(
    settings: FusionSettings,
    stage1: dict[str, StageResult],
    baseline: StageResult,
    fusion: StageResult,
    other: str,
) -> list[dict[str, Any]]:
    """The table's rows: each adapter with its own head, the other adapter with a target head, the fusion."""
    target = settings.target
    rows = [
        {
            "setup": f"{task} adapter + its head",
            "trains": "adapter + head",
            "trainable_params": result.trainable_params,
            "target_val_acc": result.metrics["val_acc"] if task == target else None,
            "own_task_val_acc": result.metrics["val_acc"],
        }
        for task, result in stage1.items()
    ]
    rows.append(
        {
            "setup": f"{other} adapter + new {target} head",
            "trains": "head only",
            "trainable_params": baseline.trainable_params,
            "target_val_acc": baseline.metrics["val_acc"],
            "own_task_val_acc": None,
        }
    )
    rows.append(
        {
            "setup": f"Fuse({', '.join(TASKS)}) + new {target} head",
            "trains": "fusion + head",
            "trainable_params": fusion.trainable_params,
            "target_val_acc": fusion.metrics["val_acc"],
            "own_task_val_acc": None,
        }
    )
    return rows


def print_table(report: dict[str, Any]) -> None:
    target = report["target"]
    header = f"{'setup':<36} {'trains':<15} {'trainable params':>16} {target + ' val acc':>14} {'own-task acc':>13}"
    lines = [header, "-" * len(header)]
    for row in report["comparison"]:
        target_acc, own_acc = (
            "-" if value is None else f"{value:.4f}"
            for value in (row["target_val_acc"], row["own_task_val_acc"])
        )
        lines.append(
            f"{row['setup']:<36} {row['trains']:<15} {row['trainable_params']:>16,} {target_acc:>14} {own_acc:>13}"
        )
    print(
        f"\n[{RECIPE}] {report['preset']} preset, backbone {report['backbone']}, target {target} "
        f"({TASKS[target].description}), {report['val_rows'][target]} validation sentences, "
        f"{report['wall_time_s']:.0f} s\n"
        + "\n".join(lines)
        + f"\nfusion heatmap: {report['fusion_weights_png']}; "
        f"outputs in {report['output_dir']}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    settings, backbone, tasks = load_everything(build_parser().parse_args(argv))
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"[{RECIPE}] preset={settings.preset} backbone={backbone.name} target={settings.target}", flush=True
    )
    stage1 = {task: train_task_adapter(settings, backbone, data) for task, data in tasks.items()}
    other = next(task for task in TASKS if task != settings.target)
    baseline = train_head_on_adapter(settings, backbone, other, tasks[settings.target])
    fusion = train_fusion(settings, backbone, tasks[settings.target])
    report = {
        "recipe": RECIPE,
        "preset": settings.preset,
        "backbone": backbone.name,
        "target": settings.target,
        "adapter": settings.placement,
        "reduction_factor": settings.reduction_factor,
        "layers": settings.layers,
        "metrics": fusion.metrics,
        "comparison": comparison(settings, stage1, baseline, fusion, other),
        "stage1": {task: dataclasses.asdict(result) for task, result in stage1.items()},
        "baseline": {"adapter": other, **dataclasses.asdict(baseline)},
        "fusion": {"adapters": list(TASKS), **dataclasses.asdict(fusion)},
        "adapter_dirs": {task: str(settings.output_dir / "adapters" / task) for task in TASKS},
        "fusion_dir": str(settings.output_dir / FUSION),
        **write_heatmap(settings, backbone, tasks[settings.target]),
        "train_rows": {task: len(data.train) for task, data in tasks.items()},
        "val_rows": {task: len(data.val) for task, data in tasks.items()},
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(settings).items()},
        "device": fusion.device,
        "output_dir": str(settings.output_dir),
        "wall_time_s": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    (settings.output_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    print_table(report)
    return report


def _stage_report(result: StageResult) -> dict[str, Any]:
    return dataclasses.asdict(result)


if __name__ == "__main__":
    main()
