"""Which table columns a task reads: documented default names per role, overridable by name.

A role is one thing a task needs from each row (the text, the label, the audio file ...). Its column is the one the
caller names (``text_column="review"``), else the first documented name the table has (case-insensitive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import LocalDataError


@dataclass(frozen=True)
class Role:
    """One column a task reads."""

    name: str
    """The column's name in the loaded dataset (what the collators read), e.g. ``text`` or ``path``."""
    argument: str
    """The keyword that names another column for it, e.g. ``text_column``."""
    candidates: tuple[str, ...]
    """Column names tried in order when the caller names none."""
    kind: str
    """``text``, ``label``, ``transcript``, ``image`` or ``audio``: what is checked in each row."""


TEXT = Role("text", "text_column", ("text", "sentence", "sentence1", "review", "content", "document"), "text")
LABEL = Role(
    "label",
    "label_column",
    ("label", "labels", "class", "category", "target", "sentiment", "intent"),
    "label",
)
AUDIO = Role(
    "path", "audio_column", ("file", "path", "audio", "filename", "audio_path", "audio_file"), "audio"
)
TRANSCRIPT = Role(
    "transcript", "transcript_column", ("transcript", "transcription", "text", "sentence"), "transcript"
)
IMAGE = Role(
    "image", "image_column", ("image", "image_path", "file", "path", "filename", "image_file"), "image"
)
RETRIEVAL_IMAGE = Role("image_path", "image_column", IMAGE.candidates, "image")
CAPTION = Role("caption", "caption_column", ("caption", "text", "sentence", "description"), "text")

TASK_ROLES: dict[str, tuple[Role, ...]] = {
    "text": (TEXT, LABEL),
    "image": (IMAGE, LABEL),
    "audio": (AUDIO, LABEL),
    "asr": (AUDIO, TRANSCRIPT),
    "retrieval": (RETRIEVAL_IMAGE, CAPTION),
}  # fmt: skip
"""The roles of each task, in the order they are looked up."""

COLUMN_ARGUMENTS = tuple(sorted({role.argument for roles in TASK_ROLES.values() for role in roles}))


def task_roles(task: str) -> tuple[Role, ...]:
    """The roles of ``task``; ValueError naming the known tasks for another one."""
    if task not in TASK_ROLES:
        raise LocalDataError(f"Unknown task {task!r}; pass one of {sorted(TASK_ROLES)}.")
    return TASK_ROLES[task]


def pick_columns(
    columns: Sequence[str], task: str, overrides: Mapping[str, str | None], source: str
) -> dict[str, str]:
    """Role name -> the table column that fills it. Raises ValueError naming the table's columns and the keyword
    to pass when a named column is missing or no documented name is there."""
    roles = task_roles(task)
    unknown = sorted(set(overrides) - {role.argument for role in roles})
    if unknown:
        raise LocalDataError(
            f"{unknown} do not apply to task {task!r}; its columns are chosen with "
            f"{[role.argument for role in roles]}."
        )
    lowered = {column.lower(): column for column in reversed(columns)}
    chosen: dict[str, str] = {}
    for role in roles:
        wanted = overrides.get(role.argument)
        if wanted is not None:
            if wanted not in columns:
                raise LocalDataError(
                    f"{source} has no column {wanted!r} ({role.argument}); its columns are {list(columns)}."
                )
            chosen[role.name] = wanted
            continue
        taken = set(chosen.values())
        found = next(
            (lowered[name] for name in role.candidates if name in lowered and lowered[name] not in taken),
            None,
        )
        if found is None:
            raise LocalDataError(
                f"{source} has no {role.kind} column: it looks for one named {' / '.join(role.candidates)} and its "
                f"columns are {list(columns)}. Rename the column, or pass {role.argument}='<column>'. The first row "
                "of a CSV/TSV file must be a header naming the columns."
            )
        chosen[role.name] = found
    return chosen
