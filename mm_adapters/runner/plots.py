"""Training-curve and confusion-matrix PNGs from a run's CSV log and metrics."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def read_log(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Columns of a Lightning CSVLogger ``metrics.csv`` as (step, value) series, empty cells skipped."""
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as file:
        for row in csv.DictReader(file):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def plot_curves(log_path: Path, png_path: Path) -> Path:
    """Losses on the left, validation metrics on the right, against optimizer steps."""
    series = read_log(log_path) if log_path.is_file() else {}
    losses = {k: v for k, v in series.items() if k.endswith("loss") and not k.endswith("_epoch")}
    metrics = {k: v for k, v in series.items() if k.startswith("val_") and not k.endswith("loss")}
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for axis, group, title in ((left, losses, "loss"), (right, metrics, "validation metrics")):
        for name, points in sorted(group.items()):
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, marker="o" if len(points) < 30 else None, markersize=3, label=name)
        axis.set_xlabel("step")
        axis.set_title(title)
        if group:
            axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return png_path


def plot_confusion(matrix: torch.Tensor, class_names: Sequence[str], png_path: Path) -> Path:
    """Counts with true classes as rows and predicted classes as columns."""
    counts = matrix.cpu().numpy()
    size = max(4.0, 0.5 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(counts, cmap="Blues")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(ticks, class_names, fontsize=8)
    for row in ticks:
        for column in ticks:
            color = "white" if counts[row, column] > counts.max() / 2 else "black"
            axis.text(
                column, row, int(counts[row, column]), ha="center", va="center", fontsize=7, color=color
            )
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.tight_layout()
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return png_path
