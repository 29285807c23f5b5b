"""Where cached prefix features live: in memory or as safetensors files, within a byte budget."""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class FeatureStore:
    """Per-sample feature tensors keyed by ``(namespace, tower, index)``, up to ``max_bytes`` in total.

    Rows that would exceed the budget are not stored (no eviction: with shuffled epochs an evicting cache would
    keep throwing away what it needs next); :attr:`skipped` counts them. ``directory=None`` keeps rows in memory on
    ``device``; with a directory each row becomes one safetensors file there, read back onto ``device``.
    """

    def __init__(
        self, max_bytes: int, directory: str | Path | None = None, device: str | torch.device = "cpu"
    ):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}.")
        self.max_bytes = int(max_bytes)
        self.directory = Path(directory) if directory is not None else None
        self.device = torch.device(device)
        self.used_bytes = 0
        self.skipped = 0
        self._rows: dict[Hashable, torch.Tensor | Path] = {}
        self._warned = False
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def put(self, key: Hashable, row: torch.Tensor) -> bool:
        """Store one sample's features; False when the budget is full."""
        if key in self._rows:
            return True
        nbytes = row.numel() * row.element_size()
        if self.used_bytes + nbytes > self.max_bytes:
            self.skipped += 1
            self._warn_full()
            return False
        if self.directory is None:
            self._rows[key] = row.detach().to(self.device, copy=True)
        else:
            path = self.directory / f"{_file_name(key)}.safetensors"
            save_file({"features": row.detach().cpu().contiguous()}, str(path))
            self._rows[key] = path
        self.used_bytes += nbytes
        return True

    def get(self, key: Hashable) -> torch.Tensor:
        row = self._rows[key]
        if isinstance(row, Path):
            return load_file(str(row), device=str(self.device))["features"]
        return row

    def clear(self) -> None:
        for row in self._rows.values():
            if isinstance(row, Path):
                row.unlink(missing_ok=True)
        self._rows.clear()
        self.used_bytes = 0
        self.skipped = 0

    def _warn_full(self) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"Prefix feature cache is full ({self.used_bytes / 2**20:.0f} MiB of {self.max_bytes / 2**20:.0f} "
                "MiB); batches with uncached samples run the frozen prefix again. Raise max_bytes or use a "
                "directory on disk to cache everything.",
                stacklevel=3,
            )


def _file_name(key: Hashable) -> str:
    parts = key if isinstance(key, tuple) else (key,)
    return "-".join(str(part).replace("/", "_") for part in parts)
