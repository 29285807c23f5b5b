"""Stochastic AdapterDrop during Lightning training (kept apart so ``import mm_adapters`` does not load Lightning)."""

from __future__ import annotations

import random
from typing import Any

import lightning as L

from .drop import drop_random_layers, set_adapter_drop


class StochasticAdapterDrop(L.Callback):
    """Before each training batch, drop the adapters of a random number of lower layers (Rücklé et al. 2021's
    robust AdapterDrop: n uniform in 0..``max_layers``, default all but the top adapted layer); after it, drop none,
    so validation and saving see the full model.

    n depends only on ``seed``, the epoch and the batch index, so every process of a multi-GPU run drops the same
    layers (DDP needs ``find_unused_parameters=True`` since dropped adapters get no gradient).
    """

    def __init__(self, max_layers: int | None = None, seed: int = 0) -> None:
        self.max_layers = max_layers
        self.seed = seed
        self.last_dropped = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        rng = random.Random(f"{self.seed}:{trainer.current_epoch}:{batch_idx}")
        self.last_dropped = drop_random_layers(pl_module, rng, self.max_layers)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        set_adapter_drop(pl_module, 0)
