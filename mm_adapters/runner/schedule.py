"""The schedule of a run on the user's own data (``--data FOLDER``): by steps, enough for a small folder and capped
for a large one, validated every few hundred steps and stopped early when the validation metric stops improving.

A preset's epoch count is made for its corpus: one epoch of 320 clips is 20 steps, far too few, while one epoch of a
million rows is hours. So unless ``--max-steps`` or ``--max-epochs`` is given (command line or ``--config``), local
data trains for 3 epochs' worth of steps, at least :data:`MIN_STEPS` and at most :data:`MAX_STEPS`; the bundled
demo presets keep their own schedules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.callbacks import EarlyStopping

MIN_STEPS = 300
MAX_STEPS = 2000
EPOCHS = 3
VALIDATE_EVERY = 200
PATIENCE = 5
"""Validations without improvement before stopping."""
PREFERRED_METRICS = (("val_acc", "max"), ("val_mean_recall", "max"), ("val_wer", "min"), ("val_loss", "min"))
"""The metric early stopping watches: the first of these the task logs."""


@dataclass
class Schedule:
    """What a run on local data trains for, and why (for the summary)."""

    max_steps: int
    val_check_interval: int | None
    train_rows: int
    steps_per_epoch: int
    reason: str

    def describe(self) -> str:
        return (
            f"{self.max_steps} steps ({self.reason}; {self.train_rows:,} training rows, {self.steps_per_epoch} "
            f"steps per epoch), validated every {self.val_check_interval or self.steps_per_epoch} steps, early "
            f"stopping after {PATIENCE} validations without improvement"
        )


def local_data_schedule(train_rows: int, batch_size: int) -> Schedule:
    """Steps for ``train_rows`` rows in batches of ``batch_size``: 3 epochs, within [MIN_STEPS, MAX_STEPS]."""
    per_epoch = max(1, math.ceil(train_rows / batch_size))
    wanted = EPOCHS * per_epoch
    steps = min(MAX_STEPS, max(MIN_STEPS, wanted))
    reason = (
        f"{EPOCHS} epochs"
        if steps == wanted
        else f"at least {MIN_STEPS} for small data"
        if steps == MIN_STEPS
        else f"capped at {MAX_STEPS} for large data"
    )
    interval = VALIDATE_EVERY if per_epoch > VALIDATE_EVERY else None  # else: after every epoch
    return Schedule(steps, interval, train_rows, per_epoch, reason)


def training_rows(data: Any) -> int | None:
    """Rows in the training split of a recipe's loaded data (a datamodule, or a tuple starting with one)."""
    datamodule = data[0] if isinstance(data, tuple) else data
    train = getattr(datamodule, "train", None)
    return None if train is None else len(train)


class StopOnValidationMetric(EarlyStopping):
    """Lightning's ``EarlyStopping`` on the task's validation metric (the first of :data:`PREFERRED_METRICS` it
    logs, chosen at the first validation of ``fit``)."""

    def __init__(self, patience: int = PATIENCE) -> None:
        super().__init__(monitor="val_loss", mode="min", patience=patience, strict=False)
        self.chosen = False

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.chosen and not self._should_skip_check(trainer):
            metrics = trainer.callback_metrics
            self.monitor, self.mode = next(
                ((name, mode) for name, mode in PREFERRED_METRICS if name in metrics), ("val_loss", "min")
            )
            self.best_score = torch.tensor(-torch.inf if self.mode == "max" else torch.inf)
            self.chosen = True
        super().on_validation_end(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "monitor": self.monitor, "mode": self.mode, "chosen": self.chosen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.monitor = state_dict.get("monitor", self.monitor)
        self.mode = state_dict.get("mode", self.mode)
        self.chosen = state_dict.get("chosen", self.chosen)
