"""The whole run of a classification recipe: its ``load_data`` gives a datamodule and the class names, a
:class:`~mm_adapters.lightning.ClassificationModule` trains on it, and the metrics are written."""

from __future__ import annotations

from collections.abc import Callable

from ..lightning import ClassificationModule
from .run import start


def train_classifier(config_class: type, load_data: Callable, argv: list[str] | None, adapter: str) -> dict:
    """Parse ``argv`` into ``config_class``, train adapter ``adapter`` (its default name) and return the metrics."""
    run = start(config_class, load_data, argv, adapter=adapter)
    datamodule, names = run.data
    config = run.config
    module = ClassificationModule(
        run.backbone, len(names), lr=config.lr, warmup_steps=config.warmup_steps, class_names=names,
        prefix_cache=config.prefix_cache,
    )  # fmt: skip
    trainer = run.trainer()
    run.fit(trainer, module, datamodule)
    return run.write(run.evaluate(trainer, module, datamodule))
