"""Mixed-task batches: rows that each ask for their own tasks, answered from one batch.

:func:`run_mixed_batch` is the one place the server turns a batch of requests into answers. Today it runs every
task present in the batch on every row (one ``Parallel`` pass for the classification tasks) and gives each row the
answers of the tasks it asked for; a per-row routing composition (each row meeting only its own task's adapters)
replaces the body of this function alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .batches import InputItem
from .session import InferenceSession


def run_mixed_batch(
    session: InferenceSession,
    items: Sequence[InputItem],
    task_per_row: Sequence[Sequence[str]],
    top_k: int = 1,
    candidates: Sequence[Any] | None = None,
) -> list[dict[str, dict[str, Any]]]:
    """``[{task: answer}]`` for each row, holding exactly the tasks that row asked for. Rows share a modality."""
    present = list(dict.fromkeys(name for names in task_per_row for name in names))
    answers = session.predict(items, present, top_k=top_k, candidates=candidates)
    return [{name: row[name] for name in names} for row, names in zip(answers, task_per_row, strict=True)]
