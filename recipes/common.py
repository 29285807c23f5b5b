"""What the recipes share: command-line options, presets, trainer set-up and the outputs of a run.

A recipe defines its presets (``demo``: bundled data and a small random or packaged backbone, runs offline on a
laptop CPU; ``full``: the published backbone and data set from the Hugging Face Hub) and a ``load_data`` function,
then calls :func:`prepare`, builds its Lightning module, and hands over to :func:`train_and_report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lightning as L  # noqa: E402

# The frozen backbone runs in eval mode on purpose (see AdapterTaskModule.on_train_epoch_start).
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from options import PLACEMENTS, build_parser, parse_layers  # noqa: E402,F401  (re-exported for the recipes)

import mm_adapters  # noqa: E402
from mm_adapters.backbones import Backbone, BackboneNotFoundError, backbone_available, load_backbone  # noqa: E402
from mm_adapters.data import DatasetUnavailableError  # noqa: E402
from mm_adapters.lightning import AdapterTaskModule, export_adapter  # noqa: E402
from mm_adapters.reliability import (  # noqa: E402
    AtomicCheckpointIO,
    CheckpointError,
    FiniteLossGuard,
    NonFiniteLossError,
    checkpoint_mismatch,
    make_strategy,
    resolve_resume,
)

CHECKPOINT_NAME = "last.ckpt"


@dataclass(frozen=True)
class Preset:
    """Defaults for one preset of a recipe; every field can be overridden on the command line."""

    backbone: str
    data: str
    max_epochs: int
    batch_size: int
    lr: float
    pretrained: str | None = None
    placement: str = "pfeiffer"
    reduction_factor: float = 16
    layers: str = "all"
    max_steps: int = -1
    warmup_steps: int = 0


@dataclass(frozen=True)
class Settings(Preset):
    """A preset with the command-line overrides applied, plus what only the command line sets."""

    preset: str = "demo"
    recipe: str = ""
    output_dir: Path = Path("runs")
    seed: int = 0
    resume: str | None = None
    """The checkpoint this run continues from (``--resume`` resolved by :func:`prepare`), or None."""
    checkpoint_every_n_steps: int = 0
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    linear_probe: bool = False
    prefix_cache: bool = False
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None


@dataclass
class Prepared:
    settings: Settings
    backbone: Backbone
    data: Any
    adapter_name: str | None
    started: float = dataclasses.field(default_factory=time.perf_counter)


def prepare(
    args: argparse.Namespace,
    recipe: str,
    presets: dict[str, Preset],
    load_data: Callable[[Settings, Backbone], Any],
    adapter_name: str,
) -> Prepared:
    """Resolve the preset, load backbone and data, and add the adapter; under ``--preset auto`` fall back to the
    demo preset (with a banner) when the full backbone or data set cannot be had here."""
    started = time.perf_counter()
    settings = _settings(args, recipe, presets, _choose_preset(args, presets))
    L.seed_everything(settings.seed, verbose=False)
    try:
        backbone = load_backbone(settings.backbone, pretrained=settings.pretrained)
        data = load_data(settings, backbone)
    except (BackboneNotFoundError, DatasetUnavailableError, FileNotFoundError) as error:
        if args.preset != "auto" or settings.preset == "demo":
            sys.exit(f"error: {error}")
        banner(f"The full preset is not available here ({error}).\nFalling back to the DEMO preset.")
        settings = _settings(args, recipe, presets, "demo")
        backbone = load_backbone(settings.backbone, pretrained=settings.pretrained)
        data = load_data(settings, backbone)
    except ValueError as error:  # a data set folder that is missing, empty or has one class, bad labels ...
        sys.exit(f"error: {error}")
    settings = dataclasses.replace(settings, resume=_resume_path(args.resume, settings))
    name = None if settings.linear_probe else adapter_name
    if name is not None:
        config = mm_adapters.AdapterConfig.preset(
            settings.placement,
            reduction_factor=settings.reduction_factor,
            layers=parse_layers(settings.layers),
        )
        mm_adapters.add_adapter(backbone.model, name, config)
    else:
        backbone.model.requires_grad_(False)
    print(f"[{recipe}] preset={settings.preset} backbone={backbone.name} data={settings.data}", flush=True)
    return Prepared(settings, backbone, data, name, started)


def _resume_path(resume: str | None, settings: Settings) -> str | None:
    """``--resume`` as a readable checkpoint path: ``auto`` finds the output folder's ``last.ckpt``."""
    try:
        path = resolve_resume(resume, settings.output_dir)
    except CheckpointError as error:
        sys.exit(f"error: {error}")
    if path is not None:
        print(f"[{settings.recipe}] resuming from {path}", flush=True)
    return None if path is None else str(path)


def _check_resume_fits(settings: Settings, module: AdapterTaskModule) -> None:
    """Exit, saying what to do, when the checkpoint to resume from was written with other settings."""
    mismatch = None if settings.resume is None else checkpoint_mismatch(settings.resume, module)
    if mismatch is not None:
        sys.exit(
            f"error: {settings.resume} was written by a run with other settings ({mismatch}). Pass --resume none "
            "to start over (that checkpoint will be replaced) or use another --output-dir."
        )


def banner(message: str) -> None:
    line = "=" * 100
    print(f"\n{line}\n{message}\n{line}\n", flush=True)


def make_trainer(
    settings: Settings, model: torch.nn.Module | None = None, callbacks: Sequence[Callback] = ()
) -> L.Trainer:
    """A trainer that logs to CSV, keeps the last trainable-only checkpoint (written atomically, after every epoch
    or every ``--checkpoint-every-n-steps``), stops at a NaN/Inf loss and shows a progress bar. ``model`` is the
    raw backbone, which ``--strategy fsdp`` needs to find its blocks."""
    output = settings.output_dir
    every_n_steps = settings.checkpoint_every_n_steps or None
    return L.Trainer(
        max_epochs=settings.max_epochs,
        max_steps=settings.max_steps,
        limit_train_batches=settings.limit_train_batches,
        limit_val_batches=settings.limit_val_batches,
        accelerator="auto",
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=make_strategy(settings.strategy, model),
        precision=settings.precision,
        logger=CSVLogger(output, name="", version="logs"),
        plugins=[AtomicCheckpointIO()],
        callbacks=[
            FiniteLossGuard(),
            *callbacks,
            ModelCheckpoint(
                dirpath=output / "checkpoints",
                save_last=True,
                save_top_k=0,
                every_n_train_steps=every_n_steps,
            ),
            TQDMProgressBar(),
        ],
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        deterministic="warn",
    )


def train_and_report(
    prepared: Prepared,
    module: AdapterTaskModule,
    datamodule: L.LightningDataModule,
    extra: dict[str, Any] | None = None,
    before_fit: Callable[[L.Trainer], dict[str, Any]] | None = None,
    after_validate: Callable[[Path], dict[str, Any]] | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Fit (or resume), validate, export the adapter and checkpoint, and write metrics.json and the plots.

    With several processes (``--devices``/``--num-nodes``) only global rank 0 writes the outputs."""
    from plots import plot_curves

    settings = prepared.settings
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(settings, prepared.backbone.model, callbacks)
    _check_resume_fits(settings, module)
    report: dict[str, Any] = dict(extra or {})
    if before_fit is not None:
        report.update(before_fit(trainer))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=settings.resume, weights_only=True)
    except NonFiniteLossError as error:
        sys.exit(f"error: {error}")
    checkpoint = settings.output_dir / "checkpoints" / CHECKPOINT_NAME
    trainer.save_checkpoint(checkpoint, weights_only=False)
    final = {
        k: round(float(v), 6)
        for k, v in trainer.validate(module, datamodule=datamodule, verbose=False)[0].items()
    }
    if not trainer.is_global_zero:  # under DDP/FSDP one process writes the outputs
        return {"metrics": final}
    adapter_dir = export_adapter(module, settings.output_dir / "adapter")
    counts = mm_adapters.count_parameters(module)
    report = {
        "recipe": settings.recipe,
        "preset": settings.preset,
        "backbone": prepared.backbone.name,
        "data": settings.data,
        "adapter": None if prepared.adapter_name is None else settings.placement,
        "reduction_factor": None if prepared.adapter_name is None else settings.reduction_factor,
        "layers": None if prepared.adapter_name is None else settings.layers,
        "metrics": final,
        **report,
        "trainable_params": counts.trainable,
        "total_params": counts.total,
        "trainable_percent": round(counts.trainable_percent, 4),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "wall_time_s": None,
        "device": str(trainer.strategy.root_device),
        "precision": settings.precision,
        "seed": settings.seed,
        "checkpoint": str(checkpoint),
        "checkpoint_bytes": checkpoint.stat().st_size,
        "exported_adapter": str(adapter_dir),
        "resumed_from": settings.resume,
    }
    report["curves_png"] = str(
        plot_curves(settings.output_dir / "logs" / "metrics.csv", settings.output_dir / "curves.png")
    )
    if after_validate is not None:
        report.update(after_validate(settings.output_dir))
    report["wall_time_s"] = round(time.perf_counter() - prepared.started, 1)  # loading, training and outputs
    (settings.output_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    _print_summary(report)
    return report


# -- internals ------------------------------------------------------------------------------------------------------
def _choose_preset(args: argparse.Namespace, presets: dict[str, Preset]) -> str:
    if args.preset != "auto":
        return args.preset
    full = presets["full"]
    backbone = args.backbone or full.backbone
    if backbone_available(backbone, full.pretrained if args.backbone is None else None):
        return "full"
    banner(
        f"--preset auto: the full backbone {backbone!r} is not cached and the Hugging Face Hub is not reachable "
        "(or HF_HUB_OFFLINE=1).\nRunning the DEMO preset instead: bundled data and a small demo backbone; its "
        "numbers show the pipeline works, not what the full model reaches."
    )
    return "demo"


def _settings(args: argparse.Namespace, recipe: str, presets: dict[str, Preset], preset: str) -> Settings:
    base = dataclasses.asdict(presets[preset])
    overrides = {field: getattr(args, field) for field in base if getattr(args, field, None) is not None}
    if args.backbone is not None:  # the preset's open_clip weight tag belongs to the preset's backbone
        overrides["pretrained"] = None  # (give another as NAME:TAG, e.g. --backbone ViT-L-14:openai)
    precision = args.precision
    if precision == "auto":
        precision = (
            "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
        )
    return Settings(
        **{**base, **overrides},
        preset=preset,
        recipe=recipe,
        output_dir=args.output_dir or Path("runs") / recipe,
        seed=args.seed,
        resume=None,
        precision=precision,
        num_workers=args.num_workers,
        linear_probe=getattr(args, "linear_probe", False),
        prefix_cache=args.prefix_cache,
        limit_train_batches=args.limit_train_batches,
        limit_val_batches=args.limit_val_batches,
        checkpoint_every_n_steps=args.checkpoint_every_n_steps,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
    )


def _print_summary(report: dict[str, Any]) -> None:
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in report["metrics"].items())
    print(
        f"\n[{report['recipe']}] {report['preset']} preset, backbone {report['backbone']}: {metrics}\n"
        f"  trainable {report['trainable_params']:,} of {report['total_params']:,} parameters "
        f"({report['trainable_percent']:.2f}%), {report['wall_time_s']:.0f} s; outputs in "
        f"{Path(report['checkpoint']).parent.parent}",
        flush=True,
    )


def confusion_matrix_png(module: Any, class_names: list[str]) -> Callable[[Path], dict[str, Any]]:
    """An ``after_validate`` hook for classification: write the last validation confusion matrix as a PNG."""

    def write(output_dir: Path) -> dict[str, Any]:
        from plots import plot_confusion

        return {
            "confusion_matrix_png": str(
                plot_confusion(module.confusion_matrix, class_names, output_dir / "confusion_matrix.png")
            )
        }

    return write


def datamodule(settings: Settings, train: Any, val: Any, collate: Callable) -> L.LightningDataModule:
    """The data helper's module with this run's batch size, workers and seed."""
    from mm_adapters.data import AdapterDataModule

    return AdapterDataModule(
        train,
        val,
        collate,
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        seed=settings.seed,
    )
