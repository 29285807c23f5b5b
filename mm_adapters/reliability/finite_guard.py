"""Stop training at the first NaN or infinite loss, before it reaches the weights or a checkpoint."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class NonFiniteLossError(RuntimeError):
    """The loss or a trainable parameter became NaN or infinite; training was stopped."""


class FiniteLossGuard(Callback):
    """Raises :class:`NonFiniteLossError` when the loss is NaN/Inf (checked before ``backward``, so the optimizer
    never steps on it) or, with ``check_parameters``, when a trainable parameter is (checked after the step and
    before any checkpoint of that step is written). The last checkpoint on disk is therefore always finite.

    Under DDP/FSDP every process takes the same decision, so no process is left waiting in a collective.
    """

    def __init__(self, check_parameters: bool = True) -> None:
        self.check_parameters = check_parameters

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        finite = bool(torch.isfinite(loss.detach()).all())
        if not trainer.strategy.reduce_boolean_decision(finite, all=True):
            what = "the loss on another process is not finite"
            if not finite:
                what = f"the loss is {loss.detach().float().item()}"
            raise NonFiniteLossError(self._message(trainer, what))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.check_parameters:
            return
        trainable = [(name, p) for name, p in pl_module.named_parameters() if p.requires_grad]
        flags = torch.stack([torch.isfinite(p.detach()).all() for _, p in trainable]) if trainable else None
        finite = flags is None or bool(flags.all())
        if not trainer.strategy.reduce_boolean_decision(finite, all=True):
            bad = (
                [name for (name, _), ok in zip(trainable, flags.tolist(), strict=True) if not ok]
                if flags is not None
                else []
            )
            where = f"trainable parameters {bad[:3]}" if bad else "trainable parameters on another process"
            raise NonFiniteLossError(
                self._message(trainer, f"{where} became NaN or infinite after the optimizer step")
            )

    @staticmethod
    def _message(trainer: L.Trainer, what: str) -> str:
        loop = trainer.fit_loop
        position = (
            f"step {trainer.global_step} (epoch {trainer.current_epoch}, batch {loop.epoch_loop.batch_idx})"
        )
        callback = trainer.checkpoint_callback
        last = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        kept = (
            f"The last good checkpoint, {last}, was kept; resume from it once the cause is fixed."
            if last
            else "No checkpoint had been written yet."
        )
        return (
            f"Training stopped at {position}: {what}. {kept} Usual causes: a learning rate too high (lower --lr or "
            "add warm-up), float16 overflow (use bf16-mixed or 32-true precision), or NaN/Inf values in the input "
            "batch (check the data)."
        )
