"""The shared main of the classification recipes (vit_cifar, wav2vec_accent, bert_text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import common

from mm_adapters.lightning import ClassificationModule


def run(
    description: str,
    recipe: str,
    presets: dict[str, common.Preset],
    load_data: Callable[[common.Settings, Any], tuple[Any, list[str]]],
    adapter_name: str,
    argv: list[str] | None = None,
) -> dict:
    """Parse the options, train a classification adapter and head, and write the run's outputs."""
    args = common.build_parser(description, presets, linear_probe=True).parse_args(argv)
    prepared = common.prepare(args, recipe, presets, load_data, adapter_name=adapter_name)
    datamodule, names = prepared.data
    settings = prepared.settings
    module = ClassificationModule(
        prepared.backbone, len(names), lr=settings.lr, warmup_steps=settings.warmup_steps, class_names=names,
        prefix_cache=settings.prefix_cache,
    )  # fmt: skip
    return common.train_and_report(
        prepared, module, datamodule, after_validate=common.confusion_matrix_png(module, names)
    )
