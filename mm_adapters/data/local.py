"""One contract for a user's own data, for every task: find the splits, pick the columns, check every row and
media file before training, and return datasets in the batch contract's columns.

    data = load_local_data("my_reviews/", "text")          # train.csv + validation.csv, columns text,label
    print(data.summary())                                   # which files, columns and classes were used
    train, validation, names = data.train, data.validation, data.class_names

The layout is described in :data:`mm_adapters.data.local_layout.LAYOUT`. Every problem raises
:class:`LocalDataError` before anything is trained or written, naming the file, the rows and what to do.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, Features, Value

from .errors import LocalDataError
from .local_checks import Problem, check_media, is_empty, raise_problems
from .local_columns import pick_columns, task_roles
from .local_fingerprint import data_fingerprint
from .local_layout import Layout, SplitSource, find_layout
from .local_tables import column_values, read_image_folder, read_table_split, row_location
from .vocabulary import CharVocabulary

MEDIA_KINDS = ("image", "audio")
FIXES = {
    "text": "Fill in the text or delete the row.",
    "label": "Give every row a label (an empty label is not a class) or delete the row.",
    "transcript": "Give every clip its transcript or delete the row.",
    "image": "Fix the path (relative to the table's folder, or absolute) or delete the row.",
    "audio": "Fix the path (relative to the table's folder, or absolute) or delete the row.",
}


@dataclass
class LocalData:
    """A checked local data set: train and validation datasets in the batch contract's columns, and what was used."""

    task: str
    train: Dataset
    validation: Dataset
    columns: dict[str, str]
    """Dataset column -> the table column (or folder structure) it was read from."""
    sources: dict[str, str]
    """Split -> the file or folder it came from."""
    class_names: list[str] | None = None
    """Classification: names of label ids 0..N-1 (the sorted union of every split's labels)."""
    vocabulary: CharVocabulary | None = None
    """ASR: the characters of every transcript."""
    fingerprint: str = ""
    """Changes when a table, a media file (size or time) or a loading option changes."""
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """Which files, columns and classes this data set uses, in a few lines."""
        splits = ", ".join(
            f"{split} {source} ({self.counts[split]:,} rows)" for split, source in self.sources.items()
        )
        columns = ", ".join(f"{name}={source!r}" for name, source in self.columns.items())
        lines = [f"{self.task} data: {splits}", f"  columns: {columns}"]
        if self.class_names is not None:
            shown = ", ".join(self.class_names[:10]) + (", ..." if len(self.class_names) > 10 else "")
            lines.append(f"  {len(self.class_names)} classes: {shown}")
        if self.vocabulary is not None:
            lines.append(
                f"  vocabulary: {len(self.vocabulary.chars)} characters {''.join(self.vocabulary.chars)!r}"
            )
        return "\n".join(lines)


@dataclass
class _Split:
    """One split's rows: role -> values, and where each row is."""

    name: str
    source: SplitSource
    values: dict[str, list[Any]]
    where: list[str]
    columns: dict[str, str]


def load_local_data(
    path: str | Path,
    task: str,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    audio_column: str | None = None,
    transcript_column: str | None = None,
    image_column: str | None = None,
    caption_column: str | None = None,
    label_names: Sequence[str] | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    num_workers: int = 0,
    sample_rate: int | None = None,
    min_samples: int = 1,
    min_per_class: int = 2,
    decode_media: bool = True,
    cache_dir: str | None = None,
) -> LocalData:
    """Load and check a local data set for ``task`` (``text``, ``image``, ``audio``, ``asr`` or ``retrieval``).

    ``path`` is a data folder or its train table. ``*_column`` name other columns than the documented ones;
    ``label_names`` names integer labels 0..N-1; ``val_fraction`` holds out that fraction of train (stratified by
    class, seeded) when the data has no held-out split, and is refused when it has one. Media files are decoded
    once with ``num_workers`` processes; audio clips shorter than ``min_samples`` at ``sample_rate`` are refused.
    """
    overrides = {
        "text_column": text_column, "label_column": label_column, "audio_column": audio_column,
        "transcript_column": transcript_column, "image_column": image_column, "caption_column": caption_column,
    }  # fmt: skip
    roles = task_roles(task)
    overrides = {key: value for key, value in overrides.items() if value is not None}
    layout = find_layout(path, task)
    _check_split_choice(layout, val_fraction)
    splits = [_read_split("train", layout.train, task, overrides, cache_dir)]
    if layout.validation is not None:
        splits.append(_read_split("validation", layout.validation, task, overrides, cache_dir))
    problems = [problem for split in splits for problem in _field_problems(split, roles)]
    raise_problems(problems, f"Data {layout.root}")
    for split in splits:
        _resolve_media_paths(split, roles)
    if decode_media:
        raise_problems(
            _media_problems(splits, roles, num_workers, sample_rate, min_samples), f"Data {layout.root}"
        )
    labelled = any(role.kind == "label" for role in roles)
    if labelled:
        for split in splits:
            split.values["label"] = _label_strings(split, label_names)
    if layout.validation is None:
        splits = _hold_out(splits[0], val_fraction or 0.0, seed, labelled, task)
    train, validation = splits
    names = _class_names(train, validation, min_per_class, layout.root) if labelled else None
    data = LocalData(
        task=task,
        train=_to_dataset(train, task, names),
        validation=_to_dataset(validation, task, names),
        columns=train.columns,
        sources={"train": _describe(train), "validation": _describe(validation)},
        class_names=names,
        counts={"train": len(train.where), "validation": len(validation.where)},
    )
    if task == "asr":
        data.vocabulary = CharVocabulary.from_texts(
            [*train.values["transcript"], *validation.values["transcript"]]
        )
    data.fingerprint = _fingerprint(
        layout, splits, roles, task, val_fraction, seed, label_names, train.columns
    )
    return data


# -- reading ---------------------------------------------------------------------------------------------------------
def _check_split_choice(layout: Layout, val_fraction: float | None) -> None:
    if val_fraction is not None and not 0 < val_fraction < 1:
        raise LocalDataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.")
    if layout.validation is None and val_fraction is None:
        raise LocalDataError(
            f"{layout.missing}, so there is nothing to validate on (validating on the training data would "
            "report a wrong result). Add a held-out split (validation.<ext>, or a validation/ folder of images), "
            "or pass val_fraction (e.g. 0.1) to hold out that part of train."
        )
    if layout.validation is not None and val_fraction is not None:
        raise LocalDataError(
            f"{layout.root} already has a held-out split ({layout.validation.path.name}) and val_fraction="
            f"{val_fraction} was given too; drop val_fraction or the held-out split."
        )


def _read_split(
    name: str, source: SplitSource, task: str, overrides: dict[str, str], cache_dir: str | None
) -> _Split:
    if source.form == "imagefolder":
        if overrides:
            raise LocalDataError(
                f"{sorted(overrides)} name table columns, but {source.path} is an image folder (classes are its "
                "subfolder names); drop them."
            )
        values = read_image_folder(source.path)
        return _Split(
            name,
            source,
            values,
            list(values["image"]),
            {"image": "<class>/<image> files", "label": "folder names"},
        )
    table = read_table_split(source.path, cache_dir)
    if len(table) == 0:
        raise LocalDataError(f"{source.path} has no rows; add some below the header.")
    columns = pick_columns(table.column_names, task, overrides, str(source.path))
    values = {role: column_values(table, column) for role, column in columns.items()}
    where = [f"{source.path.name} {row_location(source.path, i)}" for i in range(len(table))]
    return _Split(name, source, values, where, columns)


def _field_problems(split: _Split, roles: Sequence) -> list[Problem]:
    problems = []
    for role in roles:
        for i, value in enumerate(split.values[role.name]):
            if is_empty(value):
                what = "empty file path" if role.kind in MEDIA_KINDS else f"empty {role.kind}"
                problems.append(
                    Problem(split.where[i], f"{what} (column {split.columns[role.name]!r})", FIXES[role.kind])
                )
    return problems


def _resolve_media_paths(split: _Split, roles: Sequence) -> None:
    folder = split.source.path.parent
    for role in roles:
        if role.kind in MEDIA_KINDS:
            split.values[role.name] = [
                str((folder / str(value).strip()).resolve()) for value in split.values[role.name]
            ]


def _media_problems(
    splits: Sequence[_Split], roles: Sequence, num_workers: int, sample_rate: int | None, min_samples: int
) -> list[Problem]:
    problems = []
    for role in roles:
        if role.kind not in MEDIA_KINDS:
            continue
        paths = [p for split in splits for p in split.values[role.name]]
        bad = check_media(paths, role.kind, num_workers, sample_rate, min_samples)
        reported: set[str] = set()
        for split in splits:
            for i, path in enumerate(split.values[role.name]):
                if path in bad and path not in reported:
                    reported.add(path)
                    where = split.where[i] if split.source.form == "table" else split.source.path.name
                    problems.append(
                        Problem(
                            where,
                            f"{role.kind} {path} {bad[path]}",
                            "Replace or convert those files (images to PNG/JPEG, audio to WAV/FLAC) or delete "
                            "their rows.",
                        )
                    )
    return problems


# -- labels ----------------------------------------------------------------------------------------------------------
def _label_strings(split: _Split, label_names: Sequence[str] | None) -> list[str]:
    labels = [_as_label(value) for value in split.values["label"]]
    if label_names is None:
        return labels
    problems, named = [], []
    for i, label in enumerate(labels):
        if label.lstrip("-").isdigit() and 0 <= int(label) < len(label_names):
            named.append(label_names[int(label)])
        elif label in label_names:
            named.append(label)
        else:
            named.append(label)
            problems.append(
                Problem(split.where[i], f"label {label!r} is neither an id 0..{len(label_names) - 1} nor one of "
                        f"{list(label_names)}", "Fix the label or pass label_names that include it.")
            )  # fmt: skip
    raise_problems(problems, f"Data {split.source.path}")
    return named


def _as_label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _sorted_names(names: set[str]) -> list[str]:
    """Sorted class names; integer names sort as numbers (2 before 10)."""
    if all(name.lstrip("-").isdigit() for name in names):
        return sorted(names, key=int)
    return sorted(names)


def _class_names(train: _Split, validation: _Split, min_per_class: int, root: Path) -> list[str]:
    counts = Counter(train.values["label"])
    if len(counts) < 2:
        raise LocalDataError(
            f"Data {root} has only one class ({next(iter(counts))!r}); classification needs at least two. Add "
            "examples of the other classes."
        )
    problems = []
    for i, label in enumerate(validation.values["label"]):
        if label not in counts:
            problems.append(
                Problem(validation.where[i], f"validation class {label!r} has no training examples",
                        "Every validation class needs training examples: add some to train or remove those rows.")
            )  # fmt: skip
    for label, count in sorted(counts.items()):
        if count < min_per_class:
            problems.append(
                Problem(train.source.path.name, f"class {label!r} has {count} training example(s), fewer than "
                        f"the {min_per_class} per class needed", "Add examples of those classes, or remove them.")
            )  # fmt: skip
    raise_problems(problems, f"Data {root}")
    names = _sorted_names(set(counts) | set(validation.values["label"]))
    if len(names) < 2:
        raise LocalDataError(
            f"Data {root} has only one class ({names[0]!r}); classification needs at least two. Add examples of "
            "the other classes."
        )
    return names


# -- splitting -------------------------------------------------------------------------------------------------------
def _hold_out(split: _Split, fraction: float, seed: int, labelled: bool, task: str) -> list[_Split]:
    """Split train into train and validation: stratified by class, or (retrieval) by image, so that no image
    has captions on both sides."""
    rng = random.Random(seed)
    n = len(split.where)
    if labelled:
        groups: dict[str, list[int]] = {}
        for i, label in enumerate(split.values["label"]):
            groups.setdefault(label, []).append(i)
        small = sorted(label for label, rows in groups.items() if len(rows) < 2)
        if small:
            raise LocalDataError(
                f"{split.source.path}: classes {small[:5]} have a single example, so val_fraction={fraction} "
                "cannot put one in each split. Add examples or a held-out split."
            )
        held = []
        for label in sorted(groups):
            rows = groups[label][:]
            rng.shuffle(rows)
            held += rows[: min(len(rows) - 1, max(1, round(len(rows) * fraction)))]
    else:
        key = "image_path" if task == "retrieval" else "path"
        units = sorted(set(split.values[key]))
        rng.shuffle(units)
        take = max(1, round(len(units) * fraction))
        if take >= len(units):
            raise LocalDataError(f"{split.source.path} has too few rows to hold out val_fraction={fraction}.")
        chosen = set(units[:take])
        held = [i for i in range(n) if split.values[key][i] in chosen]
    held_set = set(held)
    kept = [i for i in range(n) if i not in held_set]
    held = sorted(held)
    description = f"{split.source.path.name}"

    def subset(name: str, rows: list[int], note: str) -> _Split:
        values = {role: [v[i] for i in rows] for role, v in split.values.items()}
        source = SplitSource(split.source.path, f"{split.source.form}:{note}")
        return _Split(name, source, values, [split.where[i] for i in rows], split.columns)

    return [
        subset("train", kept, f"{description} minus val_fraction={fraction}"),
        subset("validation", held, f"{fraction:.0%} of {description} held out (seed {seed})"),
    ]


# -- output ----------------------------------------------------------------------------------------------------------
def _to_dataset(split: _Split, task: str, names: list[str] | None) -> Dataset:
    features: dict[str, Any] = {role.name: Value("string") for role in task_roles(task)}
    rows = {key: [str(v) for v in values] for key, values in split.values.items()}
    if names is not None:
        lookup = {name: i for i, name in enumerate(names)}
        rows["label"] = [lookup[label] for label in split.values["label"]]
        features["label"] = ClassLabel(names=names)
    if task == "retrieval":
        ids: dict[str, int] = {}
        rows["image_id"] = [ids.setdefault(path, len(ids)) for path in rows["image_path"]]
        features["image_id"] = Value("int64")
    return Dataset.from_dict(rows, features=Features(features))


def _describe(split: _Split) -> str:
    form = split.source.form
    return form.split(":", 1)[1] if ":" in form else str(split.source.path)


def _fingerprint(
    layout: Layout, splits: Sequence[_Split], roles: Sequence, task: str, val_fraction: float | None, seed: int,
    label_names: Sequence[str] | None, columns: dict[str, str],
) -> str:  # fmt: skip
    options = {"task": task, "val_fraction": val_fraction, "seed": seed if val_fraction else None,
               "label_names": list(label_names) if label_names else None, "columns": columns}  # fmt: skip
    media = {p for split in splits for role in roles if role.kind in MEDIA_KINDS for p in split.values[role.name]}
    return data_fingerprint(layout.root, options, media)
