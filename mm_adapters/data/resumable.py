"""Training order that survives a restart: the same batches per epoch on one or many processes, and a loader that
resumes part-way into an epoch instead of replaying its first batches.

Lightning saves a dataloader's ``state_dict`` in the checkpoint and hands it back to ``load_state_dict`` before the
resumed epoch starts (``_Stateful`` loaders); a plain ``DataLoader`` restarts the interrupted epoch from the top.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sized
from typing import Any

from torch.utils.data import DataLoader, DistributedSampler


class ResumableSampler(DistributedSampler):
    """This rank's share of ``randperm(len(dataset))`` drawn from ``seed + epoch``, optionally starting ``start``
    samples into the epoch.

    It is a ``DistributedSampler`` so that Lightning keeps it under DDP/FSDP instead of swapping in its own; with
    one process it yields the whole permutation, which is exactly the global order N processes share, so one
    process with batch ``N * b`` sees the same batches as N processes with batch ``b``.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
        self._resume_epoch: int | None = None
        self._resume_start = 0

    def resume(self, epoch: int, start: int) -> None:
        """Skip the first ``start`` samples of this rank's share the next time epoch ``epoch`` is iterated."""
        self._resume_epoch, self._resume_start = epoch, start

    def __iter__(self) -> Iterator[int]:
        start = self._resume_start if self._resume_epoch == self.epoch else 0
        self._resume_epoch, self._resume_start = None, 0
        return itertools.islice(super().__iter__(), start, None)


class ResumableDataLoader(DataLoader):
    """A DataLoader over a :class:`ResumableSampler` that counts the batches it has handed out in the current epoch;
    Lightning stores that count in each checkpoint and a resumed run continues with the next unseen batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, ResumableSampler) or self.batch_size is None:
            raise ValueError("ResumableDataLoader needs sampler=ResumableSampler(...) and a batch_size.")
        self._epoch = 0
        self._served = 0

    def __iter__(self) -> Iterator[Any]:
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        skipped = sampler._resume_start if sampler._resume_epoch == sampler.epoch else 0
        self._epoch, self._served = sampler.epoch, skipped // self.batch_size
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where this epoch stands: the epoch and how many batches of it were handed out."""
        return {"epoch": self._epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume(int(state["epoch"]), int(state["batches"]) * self.batch_size)  # type: ignore[union-attr]
