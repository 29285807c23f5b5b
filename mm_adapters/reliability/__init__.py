"""Keeping training runs safe: crash-safe checkpoints loaded without pickle, automatic resume, a stop at the first
NaN/Inf, multi-process strategies, and memory measurement for soak runs."""

from .checkpoint_io import AtomicCheckpointIO, CheckpointError, check_checkpoint
from .fingerprint import FINGERPRINT_KEY, RunFingerprint, RunFingerprintCallback, saved_fingerprint
from .finite_guard import FiniteLossGuard, NonFiniteLossError
from .memory import MemoryMonitor, peak_rss_mib, rss_mib
from .resume import (
    ResumeRefusedError,
    RunFinishedError,
    checkpoint_mismatch,
    find_last_checkpoint,
    resolve_resume,
)
from .scale_out import STRATEGIES, block_classes, make_strategy

__all__ = [
    "FINGERPRINT_KEY",
    "ResumeRefusedError",
    "RunFingerprint",
    "RunFingerprintCallback",
    "RunFinishedError",
    "saved_fingerprint",
    "STRATEGIES",
    "AtomicCheckpointIO",
    "CheckpointError",
    "FiniteLossGuard",
    "MemoryMonitor",
    "NonFiniteLossError",
    "block_classes",
    "check_checkpoint",
    "checkpoint_mismatch",
    "find_last_checkpoint",
    "make_strategy",
    "peak_rss_mib",
    "resolve_resume",
    "rss_mib",
]
