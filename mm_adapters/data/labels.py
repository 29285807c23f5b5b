"""Class labels: names <-> ids through `datasets.ClassLabel`, with errors that say which label is wrong."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from datasets import ClassLabel, Dataset


def _as_ints(values: Sequence[str | int]) -> list[int] | None:
    """The values as ints when every one is an int or an integer string, else None."""
    ints = []
    for value in values:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            ints.append(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            ints.append(int(value))
        else:
            return None
    return ints


def check_label_range(labels: Sequence[int], num_classes: int | None = None, source: str = "dataset") -> None:
    """Raise ValueError for a negative label (an unlabelled split) or one >= `num_classes`."""
    for row, label in enumerate(labels):
        if label < 0:
            raise ValueError(
                f"Label {label} in {source} (row {row}) is negative: the split looks unlabelled (GLUE test "
                "splits use -1). Train and evaluate on a labelled split such as 'validation'."
            )
        if num_classes is not None and label >= num_classes:
            raise ValueError(
                f"Label {label} in {source} (row {row}) is outside 0..{num_classes - 1} ({num_classes} "
                "classes). Fix the label, or pass label names that include every class."
            )


def encode_labels(
    values: Sequence[str | int], names: Sequence[str] | None = None, source: str = "dataset"
) -> tuple[ClassLabel, list[int]]:
    """ClassLabel and ids for raw labels: ints (or int strings) index `names`; other strings are looked up in
    `names`, or in their sorted set when no names are given."""
    if len(values) == 0:
        raise ValueError(f"{source} has no labelled rows; add rows with a label.")
    ints = _as_ints(values)
    if ints is not None:
        num_classes = len(names) if names is not None else max(ints) + 1
        check_label_range(ints, num_classes, source)
        feature = ClassLabel(names=list(names)) if names is not None else ClassLabel(num_classes=num_classes)
        return feature, ints
    texts = [str(value).strip() for value in values]
    names = list(names) if names is not None else sorted(set(texts))
    lookup = {name: index for index, name in enumerate(names)}
    unknown = sorted(set(texts) - lookup.keys())
    if unknown:
        raise ValueError(
            f"Labels {unknown[:5]} in {source} are not among the class names {names}. Fix the labels or pass "
            "label names that include them."
        )
    return ClassLabel(names=names), [lookup[text] for text in texts]


def to_class_labels(dataset: Dataset, column: str = "label", names: Sequence[str] | None = None) -> Dataset:
    """The dataset with `column` as a ClassLabel (strings -> ids; ids checked against `names`)."""
    feature = dataset.features.get(column)
    if feature is None:
        raise ValueError(f"Column {column!r} not found; the dataset has {list(dataset.features)}.")
    if isinstance(feature, ClassLabel):
        if names is not None and list(names) != feature.names:
            raise ValueError(f"Column {column!r} already has class names {feature.names}, not {list(names)}.")
        check_label_range(dataset[column], feature.num_classes, f"column {column!r}")
        return dataset
    class_label, ids = encode_labels(dataset[column], names, f"column {column!r}")
    return dataset.remove_columns(column).add_column(column, ids, feature=class_label)


def label_names(dataset: Dataset, column: str = "label") -> list[str]:
    """Class names of a ClassLabel column, in id order."""
    feature = dataset.features.get(column)
    if not isinstance(feature, ClassLabel):
        raise ValueError(
            f"Column {column!r} is {feature!r}, not a ClassLabel; convert it with to_class_labels(dataset, {column!r})."
        )
    return list(feature.names)


def shared_class_labels(splits: Mapping[str, Dataset], column: str = "label") -> dict[str, Dataset]:
    """Every split with `column` as one ClassLabel: the sorted union of all splits' names, so that an id means the
    same class in train and validation (encoding each split on its own shifts the ids when a split lacks a class).
    Splits that already share one ClassLabel are returned as they are."""
    features = {name: split.features.get(column) for name, split in splits.items()}
    missing = sorted(name for name, feature in features.items() if feature is None)
    if missing:
        raise ValueError(
            f"Column {column!r} not found in splits {missing}; the first has {list(next(iter(splits.values())).features)}."
        )
    labels = list(features.values())
    if all(isinstance(f, ClassLabel) for f in labels) and all(f.names == labels[0].names for f in labels):
        return {name: to_class_labels(split, column) for name, split in splits.items()}
    values: set[str] = set()
    for name, split in splits.items():
        feature = features[name]
        if isinstance(feature, ClassLabel):
            values.update(feature.names)
        else:
            values.update(str(value).strip() for value in split[column])
    names = sorted(values, key=int) if all(v.lstrip("-").isdigit() for v in values) else sorted(values)
    return {name: _relabel(split, column, names) for name, split in splits.items()}


def _relabel(split: Dataset, column: str, names: list[str]) -> Dataset:
    feature = split.features[column]
    if isinstance(feature, ClassLabel) and feature.names == names:
        return split
    if isinstance(feature, ClassLabel):
        values = [feature.names[value] if value >= 0 else "" for value in split[column]]
    else:
        values = [str(value).strip() for value in split[column]]
    lookup = {name: index for index, name in enumerate(names)}
    unknown = sorted(set(values) - lookup.keys())
    if unknown:  # an unlabelled row (GLUE test splits use -1)
        raise ValueError(
            f"Labels {unknown[:5]} in column {column!r} are not class names {names}; label every row."
        )
    ids = [lookup[value] for value in values]
    features = split.features.copy()
    features[column] = ClassLabel(names=names)
    return split.map(
        lambda _, rows: {column: [ids[row] for row in rows]},
        with_indices=True, batched=True, features=features, keep_in_memory=True,
    )  # fmt: skip
