"""Mixed-task batches: rows that each ask for their own tasks, answered from one batch.

:func:`run_mixed_batch` is the one place the server turns a batch of requests into answers. Classification tasks
with adapters are routed: each (row, task) pair becomes one row of a single forward pass per backbone in which the
row meets only its own task's adapters and head (:class:`~mm_adapters.Route`, gathered weights and batched matmuls,
as Punica's SGMV does for LoRA). The other tasks a row asks for (head-only probes, retrieval, speech recognition)
are answered by :meth:`InferenceSession.predict` on the rows that asked for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .batches import InputItem, collate, to_device
from .session import InferenceSession, top_answers
from .tasks import LoadedTask, class_names_of, classify_routed


def run_mixed_batch(
    session: InferenceSession,
    items: Sequence[InputItem],
    task_per_row: Sequence[Sequence[str]],
    top_k: int = 1,
    candidates: Sequence[Any] | None = None,
) -> list[dict[str, dict[str, Any]]]:
    """``[{task: answer}]`` for each row, holding exactly the tasks that row asked for. Rows share a modality."""
    if not items:
        return []
    answers: list[dict[str, dict[str, Any]]] = [{} for _ in items]
    with session.lock:
        session.check_inputs(
            list(dict.fromkeys(n for names in task_per_row for n in names)), items[0].modality
        )
        pairs = [
            (row, name) for row, names in enumerate(task_per_row) for name in names if _routed(session, name)
        ]
        for key in dict.fromkeys(session.tasks[name].export.backbone for _, name in pairs):
            group = [(row, name) for row, name in pairs if session.tasks[name].export.backbone == key]
            backbone = session.backbones[key]
            tasks = [t for t in session.tasks.values() if t.export.backbone == key and _routable(t)]
            batch = to_device(collate(backbone, [items[row] for row, _ in group]), session.device)
            probabilities = classify_routed(backbone, tasks, batch, [name for _, name in group])
            for (row, name), row_probabilities in zip(group, probabilities, strict=True):
                names = class_names_of(session.tasks[name])
                answers[row][name] = top_answers(row_probabilities[None], names, top_k)[0]
        rest = [[name for name in names if not _routed(session, name)] for names in task_per_row]
        rows = [row for row, names in enumerate(rest) if names]
        if rows:
            present = list(dict.fromkeys(name for row in rows for name in rest[row]))
            found = session.predict([items[row] for row in rows], present, top_k=top_k, candidates=candidates)
            for row, result in zip(rows, found, strict=True):
                answers[row].update({name: result[name] for name in rest[row]})
    return [{name: answers[row][name] for name in names} for row, names in enumerate(task_per_row)]


def _routable(task: LoadedTask) -> bool:
    return task.kind == "classification" and task.export.has_adapter


def _routed(session: InferenceSession, name: str) -> bool:
    return _routable(session.tasks[name])
