"""A LightningDataModule over ready datasets and a collate function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from .indexed import IndexedDataset
from .resumable import ResumableDataLoader, ResumableSampler


class AdapterDataModule(L.LightningDataModule):
    """Train/val(/test) dataloaders: rows get their `index`, the training order is a permutation drawn from
    `seed + epoch` (the same for every fit, on one process or split across DDP ranks, and resumable part-way into
    an epoch; see `ResumableSampler`), and `val_collate_fn` defaults to `collate_fn`."""

    def __init__(
        self,
        train: Sequence[dict[str, Any]],
        val: Sequence[dict[str, Any]],
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]],
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        val_collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
        test: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if len(train) == 0:
            raise ValueError("The training dataset is empty; pass a dataset with at least one row.")
        self.train, self.val, self.test = train, val, test
        self.collate_fn = collate_fn
        self.val_collate_fn = val_collate_fn or collate_fn
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self._train_loader: ResumableDataLoader | None = None
        self._resume_state: dict[str, int] | None = None

    def _loader(self, dataset: Sequence[dict[str, Any]], collate_fn: Callable, shuffle: bool) -> DataLoader:
        return DataLoader(
            IndexedDataset(dataset),
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            collate_fn=collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        dataset = IndexedDataset(self.train)
        self._train_loader = ResumableDataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=ResumableSampler(dataset, num_replicas=replicas, rank=rank, seed=self.seed),
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        if self._resume_state:
            self._train_loader.load_state_dict(self._resume_state)
            self._resume_state = None
        return self._train_loader

    def state_dict(self) -> dict[str, int]:
        """How far the training order got (Lightning stores it in every checkpoint), so a resumed run continues
        with the next unseen batch. Lightning restores data modules before it builds the loaders, which also
        covers runs whose optimizer set-up builds them early (``trainer.estimated_stepping_batches``)."""
        return self._train_loader.state_dict() if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._resume_state = dict(state_dict) or None

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val, self.val_collate_fn, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        if self.test is None:
            raise ValueError("No test dataset was given to AdapterDataModule.")
        return self._loader(self.test, self.val_collate_fn, shuffle=False)
