"""The recipe runner: a typed config per recipe (jsonargparse, YAML presets, ``--config``, ``--print-config``) and
one run's Trainer, fit and outputs. See ``recipes/`` for the recipes built on it and ``run.py`` for the shape of one.
"""

from .classify import train_classifier
from .cli import banner, dump_config, explicit_fields, parse_config, resolve_config
from .config import (
    PRESET_NAMES,
    AdapterOptions,
    AudioColumns,
    CaptionColumns,
    ClassificationConfig,
    DataOptions,
    ImageColumns,
    RecipeConfig,
    RunOptions,
    TextColumns,
    TrainerOptions,
    TranscriptColumns,
    option,
    parse_layers,
)
from .local import is_local, load_local
from .methods import METHODS
from .plots import plot_confusion, plot_curves
from .run import Run, datamodule, prepare_method, resolve_precision, start

__all__ = [
    "METHODS",
    "PRESET_NAMES",
    "AdapterOptions",
    "AudioColumns",
    "CaptionColumns",
    "ClassificationConfig",
    "DataOptions",
    "ImageColumns",
    "RecipeConfig",
    "Run",
    "RunOptions",
    "TextColumns",
    "TrainerOptions",
    "TranscriptColumns",
    "banner",
    "datamodule",
    "dump_config",
    "explicit_fields",
    "is_local",
    "load_local",
    "option",
    "parse_config",
    "parse_layers",
    "plot_confusion",
    "plot_curves",
    "prepare_method",
    "resolve_config",
    "resolve_precision",
    "start",
    "train_classifier",
]
