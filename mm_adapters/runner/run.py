"""One recipe run: backbone, data and adapter (:func:`start`), then a Lightning Trainer, ``fit`` and the outputs
every recipe writes (metrics.json, the exported adapter, checkpoints/last.ckpt, CSV logs, curves.png, and
confusion_matrix.png for classifiers).

A recipe reads::

    run = runner.start(Config, load_data, argv, adapter="cifar10")   # parse, seed, backbone, data, adapter
    datamodule, names = run.data
    module = ClassificationModule(run.backbone, len(names), lr=run.config.lr, ...)
    trainer = run.trainer()
    run.fit(trainer, module, datamodule)
    return run.write(run.evaluate(trainer, module, datamodule))
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar  # noqa: E402

from .. import count_parameters  # noqa: E402
from ..backbones import Backbone, BackboneNotFoundError, load_backbone  # noqa: E402
from ..config import AdapterConfig  # noqa: E402
from ..data import AdapterDataModule, DatasetUnavailableError, folder_fingerprint  # noqa: E402
from ..io.model_card import write_model_card  # noqa: E402
from ..lightning import AdapterTaskModule  # noqa: E402
from ..lightning.export import labels_of  # noqa: E402
from ..reliability import (  # noqa: E402
    AtomicCheckpointIO,
    CheckpointError,
    FiniteLossGuard,
    NonFiniteLossError,
    RunFingerprint,
    RunFingerprintCallback,
    checkpoint_mismatch,
    make_strategy,
    resolve_resume,
)
from ..state import check_name  # noqa: E402
from .cli import banner, resolve_config  # noqa: E402
from .config import RecipeConfig, parse_layers  # noqa: E402
from .devices import check_devices  # noqa: E402
from .exporting import export_run  # noqa: E402
from .local import check_not_local_only, command_line_words, is_local  # noqa: E402
from .loggers import logger_names, make_loggers  # noqa: E402
from .methods import lora_rank_of, prepare_backbone  # noqa: E402
from .plots import plot_confusion, plot_curves  # noqa: E402
from .schedule import Schedule, StopOnValidationMetric, local_data_schedule, training_rows  # noqa: E402

# The frozen backbone runs in eval mode on purpose (see AdapterTaskModule.on_train_epoch_start).
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")

CHECKPOINT = Path("checkpoints") / "last.ckpt"
ConfigT = TypeVar("ConfigT", bound=RecipeConfig)
UNAVAILABLE = (BackboneNotFoundError, DatasetUnavailableError, FileNotFoundError)


@dataclass
class Run:
    """A run's config, backbone and data, and the checkpoint it resumes from."""

    config: Any
    recipe: str
    backbone: Backbone
    data: Any
    adapter_name: str | None
    resume: str | None
    fingerprint: RunFingerprint | None = None
    """The data and settings of this run, stored in its checkpoints (see ``resume_path``)."""
    started: float = dataclasses.field(default_factory=time.perf_counter)
    schedule: Schedule | None = None
    """The step schedule chosen for local data (None: the preset's or the command line's)."""

    def trainer(
        self, output_dir: Path | None = None, callbacks: Sequence[Callback] = (), **overrides: Any
    ) -> L.Trainer:
        """A Trainer that logs to CSV (and the ``--logger`` trackers), keeps the last trainable-only checkpoint
        (written atomically, after every epoch or every ``checkpoint_every_n_steps``), stops at a NaN/Inf loss (and,
        on local data, when the validation metric stops improving) and shows a progress bar.
        ``overrides`` replace config fields (``max_steps=...``) for this trainer only."""
        config = dataclasses.replace(self.config, **overrides)
        output = Path(output_dir or config.output_dir)
        local = is_local(config.data)
        interval = self.schedule.val_check_interval if self.schedule is not None else None
        return L.Trainer(
            val_check_interval=interval,
            check_val_every_n_epoch=None if interval else 1,
            max_epochs=config.max_epochs,
            max_steps=config.max_steps,
            limit_train_batches=config.limit_train_batches,
            limit_val_batches=config.limit_val_batches,
            accelerator="auto",
            devices=config.devices,
            num_nodes=config.num_nodes,
            strategy=make_strategy(config.strategy, self.backbone.model),
            precision=resolve_precision(config.precision),
            logger=make_loggers(config.logger, output, self.recipe, output.name),
            plugins=[AtomicCheckpointIO()],
            callbacks=[
                FiniteLossGuard(),
                RunFingerprintCallback(self.fingerprint or run_fingerprint(config)),
                *callbacks,
                *([StopOnValidationMetric()] if local else []),
                ModelCheckpoint(
                    dirpath=output / CHECKPOINT.parent,
                    save_last=True,
                    save_top_k=0,
                    every_n_train_steps=config.checkpoint_every_n_steps or None,
                ),
                TQDMProgressBar(),
            ],
            log_every_n_steps=1,
            num_sanity_val_steps=0,
            enable_model_summary=False,
            deterministic="warn",
        )

    def fit(
        self,
        trainer: L.Trainer,
        module: AdapterTaskModule,
        datamodule: L.LightningDataModule,
        resume: str | None | type[Ellipsis] = ...,
    ) -> Path:
        """``trainer.fit`` from the run's checkpoint (``resume`` overrides it), then save ``last.ckpt``; exits with
        what to do when the checkpoint was written with other settings or the loss became NaN/Inf."""
        resume = self.resume if resume is ... else resume
        if getattr(self.config, "method", "adapter") == "full":
            module.backbone_dropout = True  # the whole backbone trains: its dropout too, as in a fine-tune
        mismatch = None if resume is None else checkpoint_mismatch(resume, module)
        if mismatch is not None:
            sys.exit(
                f"error: {resume} was written by a run with other settings ({mismatch}). Pass --resume none to "
                "start over (that checkpoint will be replaced) or use another --output-dir."
            )
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        except NonFiniteLossError as error:
            sys.exit(f"error: {error}")
        checkpoint = Path(trainer.checkpoint_callback.dirpath) / CHECKPOINT.name
        for callback in trainer.callbacks:
            if isinstance(callback, RunFingerprintCallback):
                callback.mark_finished()  # an automatic resume of this run now has nothing left to train
        trainer.save_checkpoint(checkpoint, weights_only=False)
        return checkpoint

    def resume_path(self, output_dir: Path, report: Path | None = None) -> str | None:
        """``--resume`` for checkpoints in ``output_dir``: ``auto`` takes only a checkpoint of this run's data and
        settings and refuses a finished run whose ``report`` (default ``output_dir/metrics.json``) is there;
        exits with what to do otherwise."""
        try:
            path = resolve_resume(
                self.config.resume, output_dir, self.fingerprint, report=report, start_over="--resume none",
                other_output="another --output-dir",
            )  # fmt: skip
        except CheckpointError as error:
            sys.exit(f"error: {command_line_words(str(error), self.config)}")
        return None if path is None else str(path)

    def evaluate(
        self, trainer: L.Trainer, module: AdapterTaskModule, datamodule: L.LightningDataModule
    ) -> dict[str, Any]:
        """Validate, export the adapter and head, and the report every recipe writes (rank 0 only: the other
        processes get the metrics alone). Classifiers also get confusion_matrix.png."""
        config, output = self.config, Path(self.config.output_dir)
        final = _rounded(trainer.validate(module, datamodule=datamodule, verbose=False)[0])
        if not trainer.is_global_zero:  # under DDP/FSDP one process writes the outputs
            return {"metrics": final}
        checkpoint = output / CHECKPOINT
        counts = count_parameters(module)
        adapted = self.adapter_name is not None
        method = getattr(config, "method", "adapter")
        exported = export_run(module, output / "adapter", method, self.export_details())
        report = {
            "recipe": self.recipe,
            "preset": config.preset,
            "backbone": self.backbone.name,
            "data": config.data,
            "method": method,
            "lora_rank": lora_rank_of(module.backbone.model),
            "adapter": config.placement if adapted else None,
            "reduction_factor": config.reduction_factor if adapted else None,
            "layers": config.layers if adapted else None,
            "metrics": final,
            "trainable_params": counts.trainable,
            "total_params": counts.total,
            "trainable_percent": round(counts.trainable_percent, 4),
            "schedule": self.describe_schedule(trainer),
            "epochs": trainer.current_epoch,
            "steps": trainer.global_step,
            "device": str(trainer.strategy.root_device),
            "precision": str(trainer.precision),
            "seed": config.seed,
            "checkpoint": str(checkpoint),
            "checkpoint_bytes": checkpoint.stat().st_size,
            "exported_adapter": str(exported),
            "resumed_from": self.resume,
            "curves_png": str(plot_curves(output / "logs" / "metrics.csv", output / "curves.png")),
            "adapter_name": self.adapter_name,
            "data_fingerprint": None if self.fingerprint is None else self.fingerprint.data,
        }
        labels = labels_of(module) or {}
        report.update({k: v for k, v in labels.items() if k != "task"})
        write_model_card(
            report["exported_adapter"], backbone=self.backbone.name, task=labels.get("task"), metrics=final,
            class_names=labels.get("class_names"), data=str(config.data), recipe=self.recipe, name=self.adapter_name,
        )  # fmt: skip
        confusion = getattr(module, "confusion_matrix", None)
        if confusion is not None:
            png = plot_confusion(confusion, module.class_names, output / "confusion_matrix.png")
            report["confusion_matrix_png"] = str(png)
        return report

    def export_details(self) -> dict[str, Any]:
        """What the exported ``task.json`` learns from this run: the recipe, and the backbone as configured (for
        a backbone not built by ``load_backbone``, which records its own)."""
        config = self.config
        backbone = {"name": config.backbone, "pretrained": config.pretrained, "max_length": config.max_length}
        details: dict[str, Any] = {"recipe": self.recipe, "backbone": backbone}
        if hasattr(config, "max_new_tokens"):  # how the seq2seq recipe decodes
            details["generation"] = {"max_new_tokens": config.max_new_tokens}
        return details

    def describe_schedule(self, trainer: L.Trainer) -> str:
        """What the run trained for and why, and whether early stopping ended it (for metrics.json and the
        summary)."""
        config = self.config
        if self.schedule is not None:
            text = f"local data: {self.schedule.describe()}"
        else:
            text = f"max_epochs={config.max_epochs}, max_steps={config.max_steps} (preset and command line)"
        stopper = next((c for c in trainer.callbacks if isinstance(c, StopOnValidationMetric)), None)
        if stopper is not None and stopper.stopped_epoch:
            text += f"; stopped early at step {trainer.global_step}: {stopper.monitor} stopped improving"
        return text

    def write(self, report: dict[str, Any]) -> dict[str, Any]:
        """Add the wall time, write metrics.json (rank 0) and print a one-paragraph summary."""
        if "recipe" not in report:  # not global rank 0
            return report
        report["wall_time_s"] = round(time.perf_counter() - self.started, 1)  # loading, training and outputs
        (Path(self.config.output_dir) / "metrics.json").write_text(json.dumps(report, indent=2))
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in report["metrics"].items())
        print(
            f"\n[{self.recipe}] {report['preset']} preset, backbone {report['backbone']}: {metrics}\n"
            f"  trainable {report['trainable_params']:,} of {report['total_params']:,} parameters "
            f"({report['trainable_percent']:.2f}%), {report['wall_time_s']:.0f} s; outputs in "
            f"{self.config.output_dir}\n  schedule: {report.get('schedule')}",
            flush=True,
        )
        return report

    def datamodule(self, train: Any, val: Any, collate: Callable) -> AdapterDataModule:
        """The data helper's module with this run's batch size, workers and seed."""
        return datamodule(self.config, train, val, collate)


def datamodule(config: RecipeConfig, train: Any, val: Any, collate: Callable) -> AdapterDataModule:
    """Train and validation rows batched with the config's batch size, workers and seed."""
    return AdapterDataModule(
        train, val, collate, batch_size=config.batch_size, num_workers=config.num_workers, seed=config.seed
    )


def start(
    config_cls: type[ConfigT],
    load_data: Callable[[ConfigT, Backbone], Any],
    argv: Sequence[str] | None = None,
    adapter: str | None = None,
    *,
    config: ConfigT | None = None,
    resume_per_stage: bool = False,
) -> Run:
    """Parse the config (or take ``config``, already parsed), seed, load the backbone and ``load_data(config, backbone)``,
    prepare it for ``--method`` (the ``adapter`` is added with ``--method adapter``; ``adapter=None``: the recipe
    prepares its own model with :func:`prepare_method`). Under ``--preset auto`` a full backbone or data set that cannot be
    had here falls back to the demo preset, with a banner. ``resume_per_stage``: the recipe resumes each of its
    stages from its own folder (``Run.resume_path``) instead of from the output folder's checkpoint."""
    config, requested = (config, config.preset) if config is not None else resolve_config(config_cls, argv)
    try:
        check_devices(config.strategy, config.devices)
        logger_names(config.logger)
    except ValueError as error:
        sys.exit(f"error: {error}")
    try:
        check_not_local_only(config)
        backbone, data = _load(config, load_data)
    except UNAVAILABLE as error:
        if requested != "auto" or config.preset == "demo" or is_local(config.data):
            sys.exit(f"error: {command_line_words(str(error), config)}")
        banner(f"The full preset is not available here ({error}).\nFalling back to the DEMO preset.")
        config, _ = resolve_config(config_cls, argv, preset="demo")
        backbone, data = _load(config, load_data)
    except ValueError as error:  # a data set folder that is missing, empty or has one class, bad labels ...
        sys.exit(f"error: {command_line_words(str(error), config)}")
    recipe = Path(sys.modules[config_cls.__module__].__file__).stem
    config, schedule = fit_schedule(config, data)
    fingerprint = run_fingerprint(config)
    run = Run(config, recipe, backbone, data, None, None, fingerprint, schedule=schedule)
    if not resume_per_stage:
        run.resume = run.resume_path(Path(config.output_dir))
        if run.resume is not None:
            print(f"[{recipe}] resuming from {run.resume}", flush=True)
    if adapter is not None:
        run.adapter_name = prepare_method(config, backbone.model, adapter_name(config, adapter))
    print(
        f"[{recipe}] preset={config.preset} backbone={backbone.name} data={config.data} method={config.method}",
        flush=True,
    )
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    return run


def prepare_method(
    config: RecipeConfig, model: torch.nn.Module, name: str, adapter_config: AdapterConfig | None = None
) -> str | None:
    """``--method`` on ``model``: the adapter ``name`` (``adapter_config``, default: from ``--placement``,
    ``--reduction-factor`` and ``--layers``), a frozen or unfrozen backbone, or LoRA at that adapter's parameter
    count. Returns the adapter's name (None for the other methods)."""
    adapter_config = adapter_config or AdapterConfig.preset(
        config.placement, reduction_factor=config.reduction_factor, layers=parse_layers(config.layers)
    )
    try:
        return prepare_backbone(model, config.method, name, adapter_config, config.lora_rank)
    except ValueError as error:
        sys.exit(f"error: {error}")


def fit_schedule(config: ConfigT, data: Any) -> tuple[ConfigT, Schedule | None]:
    """Local data without ``--max-steps``/``--max-epochs``: the config with the step schedule that fits the data's
    size (see :mod:`mm_adapters.runner.schedule`), and that schedule; else the config as it is and None."""
    explicit = getattr(config, "explicit_fields", set())
    rows = training_rows(data) if is_local(config.data) else None
    if rows is None or {"max_steps", "max_epochs"} & explicit:
        return config, None
    schedule = local_data_schedule(rows, config.batch_size)
    settled = dataclasses.replace(config, max_steps=schedule.max_steps, max_epochs=-1)
    settled.explicit_fields = explicit
    return settled, schedule


def adapter_name(config: RecipeConfig, default: str | None) -> str | None:
    """``--name``, else the local data folder's name (made a valid adapter name), else the recipe's ``default``."""
    if default is None:
        return None
    if getattr(config, "name", None):
        return check_name(config.name)
    if is_local(config.data):
        path = Path(config.data).expanduser().resolve()
        stem = (path.parent if path.is_file() else path).name
        cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", stem)[:64]
        return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"_{cleaned}"[:64]
    return default


def run_fingerprint(config: RecipeConfig) -> RunFingerprint:
    """This run's data (a local folder's or table's :func:`~mm_adapters.data.folder_fingerprint`, else the bundled
    or hub name) and its settings."""
    data = str(config.data)
    identity = folder_fingerprint(data) if Path(data).expanduser().exists() else data
    return RunFingerprint.of(identity, data, dataclasses.asdict(config))


def resolve_precision(precision: str) -> str:
    """``auto``: bf16-mixed on a GPU that has it, else 32-true; anything else as given."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def _load(config: RecipeConfig, load_data: Callable) -> tuple[Backbone, Any]:
    L.seed_everything(config.seed, verbose=False)
    backbone = load_backbone(config.backbone, pretrained=config.pretrained, max_length=config.max_length)
    return backbone, load_data(config, backbone)


def _rounded(metrics: dict[str, Any]) -> dict[str, float]:
    return {key: round(float(value), 6) for key, value in metrics.items()}
