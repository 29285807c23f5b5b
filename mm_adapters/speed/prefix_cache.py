"""Frozen-prefix feature cache: compute the layers below the lowest adapter once per sample, then reuse them.

With adapters only in the top layers and un-augmented data, the frozen prefix (embeddings and the layers below
the lowest adapter, in eval mode) gives the same output every epoch. The first epoch runs it and stores its output
per sample; later epochs run only the adapted layers::

    cache = PrefixCache(max_bytes=2 * 2**30).attach(backbone)
    for batch in loader:                       # every batch carries an ``index`` tensor of dataset rows
        with cache.batch(batch["index"]):
            loss = loss_fn(backbone(**inputs), labels)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .feature_store import FeatureStore
from .prefix import frozen_outside_modules, prefix_depths, unwrap_frozen_prefix, wrap_frozen_prefix

_MISS = object()


@dataclass
class CacheStats:
    """Counts per (batch, tower): ``hits`` served from the cache, ``misses`` computed (and stored)."""

    hits: int = 0
    misses: int = 0
    stored: int = 0
    skipped: int = 0
    bytes: int = 0


@dataclass
class _Batch:
    namespace: str
    keys: list[int]
    resolved: dict[str, object] = field(default_factory=dict)


class PrefixCache:
    """Caches the frozen prefix output of an adapted backbone, keyed by ``(namespace, tower, sample index)``.

    ``max_bytes`` bounds what is stored; ``directory`` keeps rows as safetensors files on disk instead of in
    memory; ``device`` is where in-memory rows live and where rows are loaded to (keep it on the GPU when they fit).
    Outside :meth:`batch` the prefix still runs without autograd, but nothing is read or stored.
    """

    def __init__(
        self,
        max_bytes: int = 2 * 2**30,
        directory: str | Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.store = FeatureStore(max_bytes, directory, device)
        self.stats = CacheStats()
        self.depths: dict[str, int] = {}
        self.refused: dict[str, str] = {}
        self._model: nn.Module | None = None
        self._frozen_outside: list[nn.Module] = []
        self._batch: _Batch | None = None

    # -- set-up (outside forward) ---------------------------------------------------------------------------
    def attach(self, model: nn.Module) -> PrefixCache:
        """Wrap the prefix layers of ``model`` (an adapted backbone) so they read from and fill this cache."""
        if self._model is not None and self._model is not model:
            raise ValueError("This PrefixCache is attached to another model; detach() it or make a new one.")
        _warn_if_augmenting(model)
        self.depths = wrap_frozen_prefix(model, cache=self)
        self._model = model
        self._frozen_outside = frozen_outside_modules(model)
        for module in self._frozen_outside:
            module.eval()
        return self

    def detach(self) -> None:
        """Unwrap the prefix layers; stored features are kept until :meth:`clear`."""
        if self._model is not None:
            unwrap_frozen_prefix(self._model)
        self._model = None

    def clear(self) -> None:
        self.store.clear()
        self.stats = CacheStats()

    @contextmanager
    def batch(self, index: torch.Tensor, namespace: str = "train") -> Iterator[PrefixCache]:
        """Forward passes inside this block serve and store prefix outputs for samples ``index`` (long, B).

        ``namespace`` separates datasets whose row indices overlap (e.g. ``"train"`` and ``"val"``).
        """
        if self._model is None:
            raise RuntimeError("Call PrefixCache.attach(model) before PrefixCache.batch(...).")
        if prefix_depths(self._model) != self.depths:
            raise RuntimeError(
                f"The adapted layers changed since attach (prefix depths {self.depths} -> "
                f"{prefix_depths(self._model)}); call clear() and attach(model) again."
            )
        for module in self._frozen_outside:
            module.eval()
        self._batch = _Batch(namespace, [int(i) for i in torch.as_tensor(index).reshape(-1).tolist()])
        try:
            yield self
        finally:
            self._batch = None

    @property
    def attached(self) -> bool:
        return self._model is not None

    @property
    def depth(self) -> int:
        """The deepest prefix over towers (0: nothing to cache)."""
        return max(self.depths.values(), default=0)

    # -- used by FrozenPrefixLayer during forward (kept out of torch.compile graphs: keys change every batch) --
    @torch.compiler.disable
    def lookup(self, tower: str, hidden: torch.Tensor) -> torch.Tensor | None:
        """The cached prefix output for the current batch, or None (then the prefix runs and is recorded)."""
        batch = self._batch
        if batch is None or tower in self.refused:
            return None
        if tower not in batch.resolved:
            batch.resolved[tower] = self._gather(batch, tower, hidden)
        found = batch.resolved[tower]
        return None if found is _MISS else found  # type: ignore[return-value]

    @torch.compiler.disable
    def record(self, tower: str, hidden: torch.Tensor) -> None:
        batch = self._batch
        if batch is None or tower in self.refused:
            return
        _check_batch_first(tower, hidden, batch.keys)
        self.stats.misses += 1
        for key, row in zip(batch.keys, hidden.detach().unbind(0), strict=True):
            full_key = (batch.namespace, tower, key)
            if full_key not in self.store:
                if self.store.put(full_key, row):
                    self.stats.stored += 1
        self.stats.skipped = self.store.skipped
        self.stats.bytes = self.store.used_bytes

    def refuse(self, tower: str, reason: str) -> None:
        """Stop caching ``tower`` (its prefix still runs without autograd)."""
        if tower not in self.refused:
            self.refused[tower] = reason
            warnings.warn(f"Prefix cache disabled for tower {tower!r}: {reason}.", stacklevel=3)

    def _gather(self, batch: _Batch, tower: str, hidden: torch.Tensor) -> object:
        keys = [(batch.namespace, tower, key) for key in batch.keys]
        if len(keys) != hidden.shape[0] or not all(key in self.store for key in keys):
            return _MISS
        rows = [self.store.get(key) for key in keys]
        if any(row.shape != hidden.shape[1:] for row in rows):
            return _MISS  # e.g. a text sample padded to another length this time: recompute
        self.stats.hits += 1
        return torch.stack(rows).to(hidden.device, non_blocking=True)


def _check_batch_first(tower: str, hidden: torch.Tensor, keys: list[int]) -> None:
    if hidden.dim() == 0 or hidden.shape[0] != len(keys):
        raise ValueError(
            f"Tower {tower!r}: the prefix output has shape {tuple(hidden.shape)} but the batch has {len(keys)} "
            "indices; the prefix cache needs batch-first hidden states and one index per sample."
        )


def _warn_if_augmenting(model: nn.Module) -> None:
    config = getattr(model, "config", None)
    if getattr(config, "mask_time_prob", 0) or getattr(config, "mask_feature_prob", 0):
        warnings.warn(
            "This model masks features in training (SpecAugment: mask_time_prob / mask_feature_prob); the prefix "
            "cache stores the masked features of the first epoch. Set both to 0 when caching.",
            stacklevel=3,
        )
