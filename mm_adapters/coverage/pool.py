"""The sweep over several worker processes, one model at a time each, with a time limit per model (a model that
does not shrink must not stall the run: it is reported as timed out)."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed

from .candidates import Candidate, named_candidate
from .check import Result
from .sweep import TIMED_OUT, sweep


class _TimeLimit(Exception):
    pass


def _on_alarm(signum, frame):
    raise _TimeLimit


def _check_one(library: str, name: str, seconds: int) -> dict:
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        result = sweep([named_candidate(library, name)])[0]
    except _TimeLimit:
        result = Result(library, name, error=f"{TIMED_OUT} after {seconds} s")
    finally:
        signal.alarm(0)
    return dataclasses.asdict(result)


def sweep_in_processes(
    items: Iterable[Candidate], jobs: int, seconds: int, progress: Callable[[Result], None] | None = None
) -> list[Result]:
    """Like :func:`~mm_adapters.coverage.sweep.sweep`, over ``jobs`` processes, in the order of ``items``."""
    order = [(c.library, c.name) for c in items]
    results: dict[tuple[str, str], Result] = {}
    with ProcessPoolExecutor(max_workers=jobs, max_tasks_per_child=20) as pool:
        futures = {
            pool.submit(_check_one, library, name, seconds): (library, name) for library, name in order
        }
        for future in as_completed(futures):
            row = future.result()
            result = Result(**{**row, "notes": tuple(row["notes"])})
            results[futures[future]] = result
            if progress is not None:
                progress(result)
    return [results[key] for key in order]
