"""Class labels: names <-> ids through `datasets.ClassLabel`, with errors that say which label is wrong."""

from __future__ import annotations

from collections.abc import Sequence

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
