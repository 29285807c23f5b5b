"""Process memory for soak runs: current and peak resident set size, recorded once per epoch."""

from __future__ import annotations

import gc
import os
import resource
import sys
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

_MIB = 1024 * 1024


def rss_mib() -> float:
    """Current resident set size of this process in MiB (from /proc on Linux; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            resident_pages = int(handle.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE") / _MIB
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def peak_rss_mib() -> float:
    """Highest resident set size this process has reached, in MiB (VmHWM from /proc on Linux, else
    ``getrusage``, which reports bytes on macOS and KiB elsewhere)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MIB if sys.platform == "darwin" else peak / 1024


class MemoryMonitor(Callback):
    """Appends ``{"epoch", "rss_mib", "peak_rss_mib"[, "cuda_peak_mib"]}`` to :attr:`records` after every training
    epoch (Lightning runs that epoch's validation and checkpoint first), after a garbage collection."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        gc.collect()
        record: dict[str, Any] = {
            "epoch": trainer.current_epoch,
            "rss_mib": round(rss_mib(), 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
        }
        if torch.cuda.is_available():
            record["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / _MIB, 1)
        self.records.append(record)
