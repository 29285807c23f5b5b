"""Timing and memory measurement: alternate the set-ups, warm up, take the median of paired ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile


@dataclass
class Ratio:
    """A ratio measured per round (paired with the reference in the same round): median and range."""

    median: float
    low: float
    high: float

    def __format__(self, spec: str) -> str:
        return f"{self.median:.2f} ({self.low:.2f}-{self.high:.2f})"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(
    fns: Sequence[Callable[[], object]], device: torch.device, warmup: int, repeats: int
) -> list[list[float]]:
    """Seconds per call of each fn, run round-robin: ``warmup`` untimed rounds, then ``repeats`` timed rounds.

    Returns ``times[fn][round]``."""
    times: list[list[float]] = [[] for _ in fns]
    for round_index in range(warmup + repeats):
        shift = round_index % len(fns)  # rotate the order so that no set-up always runs first
        for i in list(range(shift, len(fns))) + list(range(shift)):
            synchronize(device)
            start = time.perf_counter()
            fns[i]()
            synchronize(device)
            if round_index >= warmup:
                times[i].append(time.perf_counter() - start)
    return times


def paired_ratio(times: list[float], reference: list[float]) -> Ratio:
    ratios = [t / r for t, r in zip(times, reference, strict=True)]
    return Ratio(statistics.median(ratios), min(ratios), max(ratios))


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated while ``fn`` runs, above what was allocated before it.

    CUDA: the caching allocator's peak statistic. CPU: the profiler's allocation events (allocations made before
    the call, such as weights and optimizer state, are not in them; add those separately)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak


def tensor_bytes(tensors) -> int:
    """Bytes of distinct tensor storages among ``tensors``."""
    seen, total = set(), 0
    for tensor in tensors:
        if tensor is None:
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.device)
        if key not in seen:
            seen.add(key)
            total += tensor.untyped_storage().nbytes()
    return total


def matmul_tflops(device: torch.device, dtype: torch.dtype, size: int = 8192, repeats: int = 20) -> float:
    """Measured dense matmul rate of this device in TFLOP/s (random data, after warm-up)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12
