"""The sweep over several worker processes, one model at a time each, with a time limit per model (a model that
does not shrink must not stall the run: it is reported as timed out)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import signal
from collections.abc import Callable, Iterable

from .candidates import Candidate, named_candidate
from .check import Result
from .sweep import TIMED_OUT, sweep


class _TimeLimit(BaseException):  # not caught by the sweep's `except Exception` around a build or a check
    pass


def _on_alarm(signum, frame):
    raise _TimeLimit


def _check_one(task: tuple[int, str, str, int, bool]) -> tuple[int, dict]:
    index, library, name, seconds, onnx = task
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        result = sweep([named_candidate(library, name)], onnx=onnx)[0]
    except _TimeLimit:
        result = Result(library, name, error=f"{TIMED_OUT} after {seconds} s")
    finally:
        signal.alarm(0)
    return index, dataclasses.asdict(result)


def sweep_in_processes(
    items: Iterable[Candidate],
    jobs: int,
    seconds: int,
    progress: Callable[[Result], None] | None = None,
    onnx: bool = False,
) -> list[Result]:
    """Like :func:`~mm_adapters.coverage.sweep.sweep`, over ``jobs`` fresh processes (a worker is replaced every 100
    models, so memory a model leaves behind does not add up), in the order of ``items``."""
    tasks = [(index, c.library, c.name, seconds, onnx) for index, c in enumerate(items)]
    results: dict[int, Result] = {}
    with multiprocessing.get_context("spawn").Pool(jobs, maxtasksperchild=100) as pool:
        for index, row in pool.imap_unordered(_check_one, tasks):
            results[index] = Result(**{**row, "notes": tuple(row["notes"])})
            if progress is not None:
                progress(results[index])
    return [results[index] for index in range(len(tasks))]
