"""A dataset view that adds each row's `index`, the cache key the batch contract requires."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset as TorchDataset


class IndexedDataset(TorchDataset):
    """Wraps any indexable dataset of dict rows (e.g. a `datasets.Dataset`); row i comes back with `index=i`."""

    def __init__(self, dataset: Sequence[dict[str, Any]]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], "index": index}
