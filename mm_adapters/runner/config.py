"""The typed configuration of a recipe run: common option groups that every recipe's config dataclass combines.

Each field is one command-line option (``max_steps`` is ``--max-steps``) and one key of a YAML config file; its
``help`` metadata is the option's help text. A recipe adds its own fields in a subclass::

    @dataclass
    class Config(RecipeConfig):
        variant: Literal["separate", "shared", "feature"] = option("separate", "Which adapters to train.")
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..data.local_columns import AUDIO, CAPTION, IMAGE, LABEL, TEXT, TRANSCRIPT, Role
from ..reliability import STRATEGIES

PRESET_NAMES = ("demo", "full")
Placement = Literal["houlsby", "pfeiffer", "parallel", "houlsby_ffn", "adapter_plus"]
Method = Literal["adapter", "full", "probe", "lora"]
Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]


def option(default: Any, help: str) -> Any:
    """A config field with its default and the help text of its command-line option."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass
class RunOptions:
    """What the run is: preset, backbone, where it writes and where it resumes from."""

    preset: Literal["auto", "demo", "full"] = option(
        "auto",
        "full: the published backbone and data (needs the Hub or a cache); demo: bundled data and a small "
        "backbone, offline; auto: full when its backbone is available, else demo (with a banner saying so).",
    )
    backbone: str | None = option(None, "Backbone: demo name, hub id, timm/open_clip name or local folder.")
    pretrained: str | None = option(
        None, "open_clip weight tag of the backbone (also given as --backbone NAME:TAG); none for others."
    )
    output_dir: Path | None = option(None, "Where the run writes its outputs (default: runs/<recipe>).")
    seed: int = option(0, "Seed for adapter and head weights and data order.")
    resume: str = option(
        "auto",
        "auto: continue from <output-dir>/checkpoints/last.ckpt if an earlier (killed) run of the same data and "
        "settings left one (another run's, or a finished run, is refused); none: start over; or a trainable-only "
        ".ckpt of this recipe.",
    )
    name: str | None = option(
        None, "Name of the trained adapter, saved in the exported folder (default: the local data folder's name, "
        "else the recipe's task).",
    )  # fmt: skip


@dataclass
class DataOptions:
    """Which data and how it is batched."""

    data: str | None = option(None, "Data set: bundled name, local path or hub name.")
    batch_size: int = option(32, "Batch size.")
    num_workers: int = option(0, "Data loader worker processes.")
    max_length: int = option(128, "Longest text in tokens (text backbones; longer texts are truncated).")
    val_fraction: float | None = option(
        None,
        "Local data without a held-out split: hold out this fraction of train for validation (seeded, stratified "
        "by class); refused when the data has one.",
    )


@dataclass
class AdapterOptions:
    """The bottleneck adapter added to the frozen backbone."""

    method: Method = option(
        "adapter",
        "What trains: adapter (bottleneck adapters and the head, backbone frozen), full (the whole backbone and the "
        "head; lr 5e-05 unless --lr is given), probe (the head only), lora (peft's LoRA on the backbone's attention "
        "projections and the head; rank matched to the adapter's parameter count unless --lora-rank).",
    )
    lora_rank: int | None = option(
        None,
        "--method lora: the LoRA rank (default: the rank whose parameter count is closest to the adapter's).",
    )
    placement: Placement = option("pfeiffer", "Adapter placement.")
    reduction_factor: float = option(16.0, "Hidden size / bottleneck size.")
    layers: str = option("all", 'Layers with adapters: "all", "last:K" or "0,1,5".')


@dataclass
class TrainerOptions:
    """Optimisation, the Lightning Trainer and its devices."""

    max_epochs: int = option(1, "Training epochs.")
    max_steps: int = option(-1, "Stop after this many optimizer steps; -1 = no limit.")
    lr: float = option(1e-3, "AdamW learning rate.")
    warmup_steps: int = option(0, "Linear warm-up steps before cosine decay.")
    limit_train_batches: int | float = option(
        1.0, "Train on this many batches per epoch (int) or this fraction of them (float)."
    )
    limit_val_batches: int | float = option(
        1.0, "Validate on this many batches (int) or this fraction of them (float)."
    )
    checkpoint_every_n_steps: int = option(
        0, "Also write checkpoints/last.ckpt every N optimizer steps; 0 = after every epoch."
    )
    devices: int | str = option(1, 'Processes (GPUs) per node, or "auto".')
    num_nodes: int = option(1, "Machines taking part.")
    strategy: Strategy = option("auto", "Lightning strategy for several devices; see docs/scale_out.md.")
    precision: str = option(
        "auto", 'Lightning precision; "auto" = bf16-mixed on a GPU with bf16, else 32-true.'
    )
    logger: str = option(
        "csv",
        "Experiment trackers, comma-separated: csv, tensorboard, wandb, mlflow (CSV is always kept for curves.png; "
        "wandb honours WANDB_MODE=offline, mlflow MLFLOW_TRACKING_URI, default file:<output-dir>/mlruns).",
    )
    prefix_cache: bool = option(
        False,
        "Cache the frozen layers below the lowest adapter per sample in the first epoch and run only the adapted "
        "layers afterwards (use with --layers last:K; data must not be augmented).",
    )


@dataclass
class RecipeConfig(TrainerOptions, AdapterOptions, DataOptions, RunOptions):
    """Every common option; a recipe's config subclasses it (options appear in the order run, data, adapter,
    trainer, then the recipe's own)."""


@dataclass
class ClassificationConfig(RecipeConfig):
    """The classification recipes' config: the common options and a linear-probe baseline."""

    linear_probe: bool = option(False, "The same as --method probe (kept for older command lines).")


def column_option(what: str, role: Role) -> Any:
    """A local-data column option: which table column holds ``what`` (default: the first of the role's candidate
    names found, as :func:`mm_adapters.data.load_local_data` looks them up)."""
    names = ", ".join(role.candidates)
    return option(None, f"Local data: the table column with the {what} (default: the first of {names}).")


@dataclass
class TextColumns:
    """Columns of a local text-classification table."""

    text_column: str | None = column_option("texts", TEXT)
    label_column: str | None = column_option("labels", LABEL)


@dataclass
class AudioColumns:
    """Columns of a local audio-classification table."""

    audio_column: str | None = column_option("audio file paths", AUDIO)
    label_column: str | None = column_option("labels", LABEL)


@dataclass
class TranscriptColumns:
    """Columns of a local speech-recognition table."""

    audio_column: str | None = column_option("audio file paths", AUDIO)
    transcript_column: str | None = column_option("transcripts", TRANSCRIPT)


@dataclass
class ImageColumns:
    """Columns of a local image-classification table (an image folder needs none)."""

    image_column: str | None = column_option("image file paths", IMAGE)
    label_column: str | None = column_option("labels", LABEL)


@dataclass
class CaptionColumns:
    """Columns of a local image-caption table."""

    image_column: str | None = column_option("image file paths", IMAGE)
    caption_column: str | None = column_option("captions", CAPTION)


def parse_layers(text: str) -> str | tuple[int, ...]:
    """``"all"`` and ``"last:K"`` stay strings; ``"0,1,5"`` becomes a tuple of indices."""
    if text == "all" or text.startswith("last:"):
        return text
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(
            f'layers must be "all", "last:K" or comma-separated indices, got {text!r}.'
        ) from None
