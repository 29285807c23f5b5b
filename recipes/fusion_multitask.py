"""AdapterFusion (Pfeiffer et al. 2021) on a frozen text encoder: a sentiment and a topic adapter, fused for one task.

    python recipes/fusion_multitask.py --preset demo                  # all-MiniLM-L6-v2 (packaged), bundled data
    python recipes/fusion_multitask.py --preset demo --target agnews  # fuse for topic classification instead
    python recipes/fusion_multitask.py --preset full                  # bert-base-uncased, GLUE SST-2 + AG News (Hub)
    python recipes/fusion_multitask.py --data my_tasks/ --output-dir runs/fused   # my_tasks/<task>/train.csv ...

Stage 1 trains one Pfeiffer adapter and its own head per task, each alone: SST-2 sentiment and AG News topic.
Stage 2 freezes the backbone and both adapters and trains only the fusion layers and a new head on the --target
task. Baseline for the other task's adapter: a new target head on it, trained alone (head only, adapter frozen).
The table at the end compares the target task's validation accuracy and the trainable parameters of each setup.

Outputs (in --output-dir): metrics.json, fusion_weights.png (fusion attention, tokens x adapters per layer, on a
few validation sentences), adapters/<task>/ (adapter + its head), fusion/ (fusion layers + target head), and per
stage stages/<stage>/{logs/metrics.csv, curves.png, checkpoints/last.ckpt}. ``--resume auto`` (the default)
continues each stage from its own checkpoint, so a killed run restarted with the same command picks up where it
stopped. ``--data`` is ``bundled``, ``hub``, or your own: a folder with one text data folder per task in it
(e.g. ``reviews/`` and ``topics/``, each with train.csv + validation.csv of text,label; the tasks are named after
the folders and ``--target`` picks one, default the first). Presets: configs/fusion_multitask/{demo,full}.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from datasets import Dataset
from lightning.pytorch.utilities import rank_zero_only

import mm_adapters
from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.data import (
    SST2_LABEL_NAMES,
    TextClassificationCollator,
    agnews_tsv,
    label_names,
    load_hub_or_local,
    load_text_table,
    shared_class_labels,
    sst2_tsv,
)
from mm_adapters.data.local_layout import TABLE_EXTENSIONS
from mm_adapters.lightning import ClassificationModule

RECIPE = "fusion_multitask"
FUSION = "fusion"


@dataclass(frozen=True)
class TaskSource:
    """Where one task's sentences come from: the bundled TSVs, a local folder or a Hub data set."""

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


@dataclass
class Config(runner.RecipeConfig, runner.TextColumns):
    """The common options (stage 1 uses them as they are), the columns of local tables, the fusion stage and the
    data caps."""

    target: str | None = runner.option(
        None, "The task the fusion is trained for: sst2 or agnews with bundled or hub data (default sst2), or one "
        "task folder's name with your own data (default: the first).",
    )  # fmt: skip
    fusion_max_steps: int = runner.option(
        -1, "Optimizer steps of stage 2 and of the head-only baseline; -1 = no limit."
    )
    fusion_lr: float = runner.option(2e-3, "AdamW learning rate of stage 2 and of the baseline.")
    fusion_regularization: float = runner.option(
        0.01, "Weight of ||W_value - I||^2 in the stage-2 loss (AdapterHub's 0.01)."
    )
    train_limit: int = runner.option(0, "Training rows per task (a seeded random subset); 0 = all.")
    val_limit: int = runner.option(0, "Validation rows per task (a fixed random subset); 0 = all.")
    heatmap_sentences: int = runner.option(3, "Validation sentences shown in fusion_weights.png.")


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


# -- data -----------------------------------------------------------------------------------------------------------
def load_data(config: Config, backbone: Backbone) -> dict[str, TaskData]:
    """Every task's data: the bundled or hub SST-2 and AG News, or one local data folder per task."""
    names = list(task_folders(config.data)) if runner.is_local(config.data) else list(TASKS)
    tasks = {task: load_task(task, config, backbone) for task in names}
    target = config.target or next(iter(tasks))
    if target not in tasks:
        raise ValueError(f"--target {target!r} is not one of the tasks {list(tasks)}; pass one of them.")
    return tasks


def task_folders(data: str) -> dict[str, Path]:
    """Task name -> data folder: each subfolder of ``data`` that holds a train table, named after it."""
    root = Path(data).expanduser()
    if not root.is_dir():
        raise ValueError(
            f"Local data path {root} does not exist or is not a folder; pass a folder of task folders."
        )
    folders = {
        _task_name(folder.name): folder
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        if any((folder / f"train{ext}").is_file() for ext in TABLE_EXTENSIONS)
    }
    if len(folders) < 2:
        raise ValueError(
            f"{root} holds {len(folders)} task folder(s) with a train table ({sorted(folders)}); AdapterFusion needs "
            "two or more: one folder per task, each with train.<ext> and validation.<ext> (e.g. reviews/train.csv, "
            "reviews/validation.csv, topics/train.csv, topics/validation.csv)."
        )
    return folders


def _task_name(folder: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", folder)[:64]
    return name if re.match(r"[A-Za-z_]", name) else f"_{name}"[:64]


def load_task(task: str | None, config: Config, backbone: Backbone) -> TaskData:
    """A task's local data folder (the local-data contract), bundled TSVs or Hub splits, capped at
    ``train_limit`` / ``val_limit`` rows; ``task`` None: the target (default: the first task)."""
    if runner.is_local(config.data):
        folders = task_folders(config.data)
        task = task or config.target or next(iter(folders))
        local = runner.load_local(config, "text", data=folders[task])
        return _task_data(task, local.train, local.validation, local.class_names, config, backbone)
    task = task or config.target or next(iter(TASKS))
    source = TASKS[task]
    if config.data == "bundled":
        train = load_text_table(source.bundled("train"), label_names=source.label_names)
        val = load_text_table(source.bundled("validation"), label_names=label_names(train))
    else:
        splits = {split: _hub_split(source, split) for split in source.hub_splits}
        train, val = shared_class_labels(splits, "label").values()
    return _task_data(task, train, val, label_names(train), config, backbone)


def _task_data(
    task: str, train: Dataset, val: Dataset, names: list[str], config: Config, backbone: Backbone
) -> TaskData:
    collate = TextClassificationCollator(backbone.tokenizer, backbone.max_length, num_classes=len(names))
    train = _subset(train, config.train_limit, config.seed)
    val = _subset(val, config.val_limit, 0)
    return TaskData(task, train, val, names, collate)


def _hub_split(source: TaskSource, split: str) -> Dataset:
    dataset = load_hub_or_local(source.hub, split, source.hub_config)
    if source.hub_text != "text":
        dataset = dataset.rename_column(source.hub_text, "text")
    return dataset


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
    run: runner.Run, stage: str, module: ClassificationModule, data: TaskData, max_steps: int
) -> StageResult:
    """Fit ``module`` on ``data`` for at most ``max_steps`` steps (continuing from the stage's own checkpoint
    under ``--resume auto``), validate it and plot its curves."""
    started = time.perf_counter()
    output = Path(run.config.output_dir) / "stages" / stage
    print(
        f"[{RECIPE}] stage {stage}: {mm_adapters.count_parameters(module).trainable:,} trainable parameters"
    )
    trainer = run.trainer(output_dir=output, max_steps=max_steps)
    datamodule = runner.datamodule(run.config, data.train, data.val, data.collate)
    checkpoint = run.fit(trainer, module, datamodule, resume=stage_resume(run, output))
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    counts = mm_adapters.count_parameters(module)
    return StageResult(
        metrics={key: round(float(value), 6) for key, value in metrics.items()},
        trainable_params=counts.trainable,
        total_params=counts.total,
        steps=trainer.global_step,
        curves_png=str(runner.plot_curves(output / "logs" / "metrics.csv", output / "curves.png")),
        checkpoint=str(checkpoint),
        device=str(trainer.strategy.root_device),
        wall_time_s=round(time.perf_counter() - started, 1),
    )


def stage_resume(run: runner.Run, stage_dir: Path) -> str | None:
    """``--resume auto``: the stage's own last.ckpt if an earlier run of the same data and settings left one (a
    finished run whose metrics.json is there is not run again); ``none``: start over."""
    if run.config.resume not in ("auto", "none"):
        sys.exit(
            f"error: {RECIPE} resumes each stage from its own checkpoint; pass --resume auto (the default) or "
            f"--resume none, not {run.config.resume!r}."
        )
    return run.resume_path(stage_dir, report=Path(run.config.output_dir) / "metrics.json")


def train_task_adapter(run: runner.Run, data: TaskData) -> StageResult:
    """Stage 1: a new adapter named after the task, trained alone with its own head; saved with that head."""
    config, model = run.config, run.backbone.model
    L.seed_everything(config.seed, verbose=False)
    adapter = mm_adapters.AdapterConfig.preset(
        config.placement, reduction_factor=config.reduction_factor, layers=runner.parse_layers(config.layers)
    )
    mm_adapters.add_adapter(model, data.task, adapter)  # the only active and trainable adapter
    module = _classifier(run, data, config.lr)
    result = run_stage(run, data.task, module, data, config.max_steps)
    if rank_zero_only.rank == 0:  # under DDP/FSDP one process writes the outputs
        folder = Path(config.output_dir) / "adapters" / data.task
        mm_adapters.save_adapter(model, data.task, folder, head=module.head, overwrite=True)
    return result


def train_head_on_adapter(run: runner.Run, adapter: str, data: TaskData) -> StageResult:
    """Baseline: the frozen ``adapter`` with a new head for ``data``'s task, trained as long as the fusion."""
    L.seed_everything(run.config.seed, verbose=False)
    mm_adapters.set_active_adapters(run.backbone.model, adapter)
    run.backbone.model.requires_grad_(False)  # the adapter stays as stage 1 left it
    module = _classifier(run, data, run.config.fusion_lr)
    return run_stage(run, f"{adapter}_head_for_{data.task}", module, data, run.config.fusion_max_steps)


def train_fusion(run: runner.Run, data: TaskData) -> StageResult:
    """Stage 2: fusion layers over every task adapter plus a new head; backbone and adapters frozen."""
    config, model = run.config, run.backbone.model
    L.seed_everything(config.seed, verbose=False)
    mm_adapters.add_fusion(model, list(run.data), name=FUSION)  # activates Fuse(*tasks)
    module = FusionClassificationModule(
        run.backbone, len(data.names), FUSION, config.fusion_regularization, lr=config.fusion_lr,
        warmup_steps=config.warmup_steps, class_names=data.names,
    )  # fmt: skip
    result = run_stage(run, FUSION, module, data, config.fusion_max_steps)
    if rank_zero_only.rank == 0:
        mm_adapters.save_fusion(
            model, FUSION, Path(config.output_dir) / FUSION, head=module.head, overwrite=True
        )
    return result


def _classifier(run: runner.Run, data: TaskData, lr: float) -> ClassificationModule:
    return ClassificationModule(
        run.backbone, len(data.names), lr=lr, warmup_steps=run.config.warmup_steps, class_names=data.names
    )


# -- fusion heatmap, table, report ----------------------------------------------------------------------------------
def write_heatmap(config: Config, backbone: Backbone, data: TaskData) -> dict[str, Any]:
    """Fusion attention on the first validation sentences (their real tokens one after another, padding left out)
    as a PNG, and each layer's mean weight per adapter over those tokens."""
    count = min(max(1, config.heatmap_sentences), len(data.val))
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
    png = mm_adapters.plot_fusion_weights(per_token, config.output_dir / "fusion_weights.png", adapters)
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
    config: Config,
    stage1: dict[str, StageResult],
    baseline: StageResult,
    fusion: StageResult,
    other: str,
) -> list[dict[str, Any]]:
    """The table's rows: each adapter with its own head, the other adapter with a target head, the fusion."""
    target = config.target
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
            "setup": f"Fuse({', '.join(stage1)}) + new {target} head",
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
        f"({report['target_description']}), {report['val_rows'][target]} validation sentences, "
        f"{report['wall_time_s']:.0f} s\n"
        + "\n".join(lines)
        + f"\nfusion heatmap: {report['fusion_weights_png']}; "
        f"outputs in {report['output_dir']}",
        flush=True,
    )


def cap_every_stage(config: Config, explicit: set[str]) -> Config:
    """``--max-steps N`` on the command line (or in a ``--config`` file) caps the fusion stage and the baseline too,
    unless ``--fusion-max-steps`` is given as well: a user asking for N steps gets N per stage, not the preset's
    2,000 fusion steps after N adapter steps."""
    if "max_steps" not in explicit or "fusion_max_steps" in explicit or config.max_steps < 0:
        return config
    capped = (
        config.max_steps if config.fusion_max_steps < 0 else min(config.fusion_max_steps, config.max_steps)
    )
    if capped != config.fusion_max_steps:
        print(
            f"[{RECIPE}] --max-steps {config.max_steps} caps the fusion stages too ({capped} steps)",
            flush=True,
        )
    return dataclasses.replace(config, fusion_max_steps=capped)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    run = runner.start(Config, load_data, argv, resume_per_stage=True)
    if run.config.method != "adapter":
        sys.exit(f"error: {RECIPE} fuses adapters; --method {run.config.method} trains none. Drop --method.")
    run.config = cap_every_stage(run.config, runner.explicit_fields(sys.argv[1:] if argv is None else argv))
    if run.config.name:
        sys.exit(
            f"error: --name does not apply to {RECIPE}: its adapters are named after the tasks {list(run.data)}."
        )
    tasks = run.data
    run.config = config = dataclasses.replace(run.config, target=run.config.target or next(iter(tasks)))
    print(f"[{RECIPE}] target={config.target}", flush=True)
    stage1 = {task: train_task_adapter(run, data) for task, data in tasks.items()}
    other = next(task for task in tasks if task != config.target)
    baseline = train_head_on_adapter(run, other, tasks[config.target])
    fusion = train_fusion(run, tasks[config.target])
    if rank_zero_only.rank != 0:
        return {"metrics": fusion.metrics}
    output = Path(config.output_dir)
    report = {
        "recipe": RECIPE,
        "preset": config.preset,
        "backbone": run.backbone.name,
        "target": config.target,
        "target_description": TASKS[config.target].description
        if config.target in TASKS
        else str(config.data),
        "adapter": config.placement,
        "reduction_factor": config.reduction_factor,
        "layers": config.layers,
        "metrics": fusion.metrics,
        "comparison": comparison(config, stage1, baseline, fusion, other),
        "stage1": {task: dataclasses.asdict(result) for task, result in stage1.items()},
        "baseline": {"adapter": other, **dataclasses.asdict(baseline)},
        "fusion": {"adapters": list(tasks), **dataclasses.asdict(fusion)},
        "adapter_dirs": {task: str(output / "adapters" / task) for task in tasks},
        "class_names": {task: data.names for task, data in tasks.items()},
        "fusion_dir": str(output / FUSION),
        **write_heatmap(config, run.backbone, tasks[config.target]),
        "train_rows": {task: len(data.train) for task, data in tasks.items()},
        "val_rows": {task: len(data.val) for task, data in tasks.items()},
        "settings": yaml_safe(config),
        "device": fusion.device,
        "output_dir": str(output),
        "wall_time_s": round(time.perf_counter() - run.started, 1),
    }
    (output / "metrics.json").write_text(json.dumps(report, indent=2))
    print_table(report)
    return report


def yaml_safe(config: Config) -> dict[str, Any]:
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in dataclasses.asdict(config).items()
    }


if __name__ == "__main__":
    main()
