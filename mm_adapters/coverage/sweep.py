"""Run the sweep over candidates and summarise it: a table, coverage per library, failures with reasons."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable

import torch

from .candidates import Candidate
from .check import Result, check_model

BUILD_FAILED = "build failed"


def sweep(items: Iterable[Candidate], progress=None) -> list[Result]:
    results = []
    logging.getLogger("mm_adapters").setLevel(logging.ERROR)  # partial-tower notes go into the table instead
    for candidate in items:
        result = Result(candidate.library, candidate.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = candidate.build()
            except Exception as error:  # noqa: BLE001
                result.error = f"{BUILD_FAILED}: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            else:
                check_model(model, candidate.run, result)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def built(results: list[Result]) -> list[Result]:
    return [r for r in results if not r.error.startswith(BUILD_FAILED)]


def coverage(results: list[Result]) -> dict[str, tuple[int, int]]:
    """Library -> (models that pass, models built)."""
    summary: dict[str, tuple[int, int]] = {}
    for result in built(results):
        passed, total = summary.get(result.library, (0, 0))
        summary[result.library] = (passed + result.ok, total + 1)
    return summary


def class_coverage(results: list[Result], library: str = "timm") -> tuple[int, int]:
    """Model classes of ``library`` all of whose swept names pass, of the classes built."""
    classes: dict[str, bool] = {}
    for result in built(results):
        if result.library == library and result.model_class:
            classes[result.model_class] = classes.get(result.model_class, True) and result.ok
    return sum(classes.values()), len(classes)


def status(result: Result) -> str:
    if result.error.startswith(BUILD_FAILED):
        return "not built"
    if not result.ok:
        return "fails"
    return "partial" if result.partial else "yes"


def markdown(results: list[Result]) -> str:
    lines = [
        "| library | model | class | family | towers (layers) | works | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        towers = ", ".join(f"{name} ({count})" for name, count in r.towers.items())
        note = (r.error or "; ".join(r.notes)).replace("|", "/")
        lines.append(
            f"| {r.library} | {r.name} | {r.model_class} | {r.family} | {towers} | {status(r)} | {note} |"
        )
    return "\n".join(lines)


def summary_lines(results: list[Result]) -> list[str]:
    lines = []
    for library, (passed, total) in coverage(results).items():
        partial = sum(1 for r in built(results) if r.library == library and r.partial)
        lines.append(
            f"{library}: {passed} of {total} models ({100 * passed / max(total, 1):.0f}%)"
            + (f", {partial} of them with a tower left out" if partial else "")
        )
    passed, total = class_coverage(results)
    if total:
        lines.append(f"timm classes: {passed} of {total} ({100 * passed / total:.0f}%)")
    not_built = [r for r in results if r.error.startswith(BUILD_FAILED)]
    if not_built:
        lines.append(f"not built offline (not counted): {len(not_built)}")
    return lines


torch.set_num_threads(1)
