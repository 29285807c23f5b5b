"""Dynamic batching for the server: requests that arrive together run as one mixed-task batch.

One worker thread owns the model. It takes the first waiting request, gathers more for up to ``timeout`` seconds
(at most ``max_batch_size``), groups them by input kind (and top-k and captions), and answers each group with one
:func:`~mm_adapters.inference.mixed.run_mixed_batch` call. If a batch fails, its requests are run one by one, so
only the request that fails gets the error and no request ever gets another's answer.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .mixed import run_mixed_batch
from .requests import PredictRequest
from .session import InferenceSession


@dataclass
class _Job:
    request: PredictRequest
    future: Future = field(default_factory=Future)


class DynamicBatcher:
    """``submit(request) -> Future`` of ``{task: answer}``; ``retire(name)`` waits until no queued request needs
    that task, so removing a task never fails a request already accepted."""

    def __init__(self, session: InferenceSession, max_batch_size: int = 32, timeout: float = 0.005) -> None:
        self.session, self.max_batch_size, self.timeout = session, max_batch_size, timeout
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._pending: Counter[str] = Counter()
        self._retiring: set[str] = set()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="mm-adapters-batcher", daemon=True)
        self.batches = 0
        """How many batches ran (for tests and metrics)."""

    def start(self) -> DynamicBatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def submit(self, request: PredictRequest) -> Future:
        with self._changed:
            retired = [name for name in request.tasks if name in self._retiring]
            if retired:
                raise KeyError(retired[0])
            self._pending.update(request.tasks)
        job = _Job(request)
        self._queue.put(job)
        return job.future

    def retire(self, name: str, timeout: float = 60.0) -> None:
        """New requests for ``name`` are refused from now on; returns once the accepted ones are answered."""
        with self._changed:
            self._retiring.add(name)
            self._changed.wait_for(lambda: self._pending[name] == 0, timeout=timeout)

    def forget(self, name: str) -> None:
        """``name`` may be added again (after its removal)."""
        with self._changed:
            self._retiring.discard(name)
            self._pending.pop(name, None)

    def is_retiring(self, name: str) -> bool:
        return name in self._retiring

    # -- the worker thread ------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.monotonic() + self.timeout
            while len(jobs) < self.max_batch_size:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)
                    break
                jobs.append(job)
            for group in _groups(jobs):
                self._run(group)

    def _run(self, jobs: list[_Job]) -> None:
        try:
            answers = self._answer(jobs)
        except Exception as error:  # noqa: BLE001  (one bad row must not fail the others: retry each alone)
            if len(jobs) > 1:
                for job in jobs:
                    self._run([job])
                return
            jobs[0].future.set_exception(error)
            self._done(jobs[0])
            return
        for job, answer in zip(jobs, answers, strict=True):
            job.future.set_result(answer)
            self._done(job)

    def _answer(self, jobs: list[_Job]) -> list[dict[str, Any]]:
        first = jobs[0].request
        self.batches += 1
        return run_mixed_batch(
            self.session,
            [job.request.item for job in jobs],
            [job.request.tasks for job in jobs],
            top_k=first.top_k,
            candidates=first.candidates,
        )

    def _done(self, job: _Job) -> None:
        with self._changed:
            self._pending.subtract(job.request.tasks)
            self._changed.notify_all()


def _groups(jobs: list[_Job]) -> list[list[_Job]]:
    """Jobs that can share a batch: the same input kind, top-k and captions to rank."""
    groups: dict[tuple, list[_Job]] = {}
    for job in jobs:
        request = job.request
        groups.setdefault((request.item.modality, request.top_k, request.candidates), []).append(job)
    return list(groups.values())
