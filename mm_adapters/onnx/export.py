"""``export_onnx``: exported task folders -> an ONNX folder a device runs with ONNX Runtime and no Python.

The folder holds one graph per input kind (``model.onnx``; ``image.onnx`` and ``text.onnx`` for retrieval),
``preprocessing.json`` (+ ``tokenizer.json``), and ``onnx_export.json``: the graphs' inputs and outputs, each
task's outputs and labels, which exporter wrote each graph, the measured difference from eager PyTorch, and the
file sizes. With ``swappable=True`` the backbone graph is written once and each task is ``tasks/<name>.safetensors``
(see :mod:`.task_weights`); several exports without it become one multi-task graph (``Parallel``: every task's
logits from one pass). ``quantize="int8"`` adds ``<graph>.int8.onnx`` beside each fp32 graph.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_directory_atomically
from ..backbones import Backbone
from ..composition import Parallel
from ..injection import list_adapters, set_active_adapters
from ..io import ONNX_MANIFEST_FILE
from .graphs import CLASSIFICATION, CTC, GraphSpec, classifier_spec, ctc_spec, parallel_spec, retrieval_specs
from .preprocessing import write_preprocessing
from .quantize import quantize_int8
from .task_weights import SwappableGraph, save_task_file, slot_names, task_tensors
from .tasks import ExportedTask, load_tasks
from .tracing import (
    CHECK_BATCH,
    CHECK_LENGTH,
    DEFAULT_OPSET,
    OnnxExportError,
    compare_with_eager,
    export_graph,
)

MANIFEST_FILE = ONNX_MANIFEST_FILE
FORMAT = "mm_adapters.onnx/1"
TASKS_FOLDER = "tasks"
QUANTIZATIONS = ("int8",)


def export_onnx(
    backbone: Backbone,
    export_folders: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    swappable: bool = False,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    adapters: Sequence[str | os.PathLike] = (),
    overwrite: bool = True,
) -> Path:
    """Export the tasks in ``export_folders`` (``export_adapter`` / ``save_fusion`` folders; a fusion after the
    ``adapters`` it fuses) on ``backbone`` to ONNX in ``out_dir``; returns ``out_dir``.

    Raises :class:`OnnxExportError` when a graph cannot be exported (naming the failing operation) or when ONNX
    Runtime's outputs differ from eager PyTorch by more than 1e-4. The tasks are loaded onto a copy of
    ``backbone``; the backbone passed in is left as it was.
    """
    folders = (
        [Path(export_folders)]
        if isinstance(export_folders, (str, os.PathLike))
        else list(map(Path, export_folders))
    )
    if not folders:
        raise ValueError("export_onnx needs at least one export folder.")
    if quantize not in (None, *QUANTIZATIONS):
        raise ValueError(f"quantize must be None or one of {QUANTIZATIONS}, got {quantize!r}.")
    backbone = copy.deepcopy(backbone)
    tasks = load_tasks(backbone, folders, [Path(a) for a in adapters])
    _check_combination(backbone, tasks, swappable)

    def fill(folder: Path) -> None:
        manifest: dict[str, Any] = {"format": FORMAT, "backbone": _backbone_record(backbone, tasks),
                                    "swappable": swappable, "quantized": quantize, "opset": opset}  # fmt: skip
        if swappable:
            graphs = _export_swappable(backbone, tasks, folder, opset)
        else:
            graphs = _export_baked(backbone, tasks, folder, opset)
        manifest["graphs"] = graphs
        manifest["tasks"] = {task.name: _task_record(task, swappable) for task in tasks}
        if quantize == "int8":
            for name, graph in graphs.items():
                target = folder / f"{name}.int8.onnx"
                graph["int8"] = {"file": target.name, **quantize_int8(folder / graph["file"], target)}
        manifest["preprocessing"] = write_preprocessing(folder, backbone, tasks[0].description, tasks[0].kind)
        manifest["file_sizes"] = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
                                  if p.is_file()}  # fmt: skip
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    return write_directory_atomically(Path(out_dir), fill, overwrite)


def _check_combination(backbone: Backbone, tasks: list[ExportedTask], swappable: bool) -> None:
    kinds = {task.kind for task in tasks}
    if len(kinds) > 1:
        raise ValueError(
            f"The exports are of different tasks ({sorted(kinds)}); export each kind separately."
        )
    if len(tasks) > 1 and not swappable and kinds != {CLASSIFICATION}:
        raise ValueError(
            f"Several {kinds.pop()} exports share a graph only as swappable task weights; pass swappable=True."
        )
    if swappable:
        for task in tasks:
            if not task.adapter_names and task.head is None:
                raise ValueError(f"{task.folder} has neither an adapter nor a head: nothing to swap.")
        layouts = {task.name: _layout(backbone, task) for task in tasks}
        first = tasks[0].name
        for name, layout in layouts.items():
            if layout != layouts[first]:
                raise ValueError(
                    f"Swappable tasks share one graph, so their adapters must have the same configuration; "
                    f"{name!r} has {layout}, {first!r} has {layouts[first]}. Export it separately."
                )


def _layout(backbone: Backbone, task: ExportedTask) -> list[dict]:
    """The adapter configurations of a task (without names), which a swappable graph bakes in."""
    configs = list_adapters(backbone.model)
    return [configs[name].to_dict() for name in task.adapter_names]


def _specs(backbone: Backbone, task: ExportedTask) -> list[GraphSpec]:
    if task.kind == CLASSIFICATION:
        return [classifier_spec(backbone, task.name, task.head)]
    if task.kind == CTC:
        return [ctc_spec(backbone, task.name, task.head)]
    return retrieval_specs(backbone, task.name, task.head)


def _branch(task: ExportedTask):
    setup = task.setup
    if setup is None:
        raise ValueError(f"{task.folder} has no adapter; a multi-task graph runs one adapter setup per task.")
    return setup[0] if isinstance(setup, tuple) and len(setup) == 1 else setup


def _activate(backbone: Backbone, task: ExportedTask) -> None:
    if task.setup is not None:
        set_active_adapters(backbone.model, task.setup)


def _export_baked(backbone: Backbone, tasks: list[ExportedTask], folder: Path, opset: int) -> dict[str, Any]:
    if len(tasks) == 1:
        _activate(backbone, tasks[0])
        specs = _specs(backbone, tasks[0])
    else:
        set_active_adapters(backbone.model, Parallel(*(_branch(task) for task in tasks)))
        specs = [parallel_spec(backbone, {task.name: task.head for task in tasks})]
    graphs = {}
    for spec in specs:
        result = export_graph(spec, folder / f"{spec.name}.onnx", opset=opset)
        graphs[spec.name] = _graph_record(spec, result)
    return graphs


def _export_swappable(
    backbone: Backbone, tasks: list[ExportedTask], folder: Path, opset: int
) -> dict[str, Any]:
    """Trace with the first task's tensors as inputs, save every task's tensors, and check each task's outputs
    from the swappable graph against that task run baked in eager PyTorch."""
    first = tasks[0]
    _activate(backbone, first)
    graphs: dict[str, Any] = {}
    per_task: dict[str, dict] = {task.name: {} for task in tasks}
    for index, spec in enumerate(_specs(backbone, first)):
        slots = slot_names(spec.module, first.adapter_names)
        if not slots:
            raise ValueError(f"Graph {spec.name!r} has no adapter or head tensors to make swappable.")
        swappable = SwappableGraph(spec.module, slots)
        tensors = task_tensors(spec.module, slots)
        extra = {name: torch.from_numpy(array) for name, array in tensors.items()}
        axes = _free_axes(spec.module, slots, first.kind)
        swappable_spec = GraphSpec(spec.name, swappable, spec.input_names, spec.output_names, spec.make_inputs,
                                   spec.dynamic_axes, {})  # fmt: skip
        path = folder / f"{spec.name}.onnx"
        result = export_graph(swappable_spec, path, opset=opset, extra_inputs=extra, extra_axes=axes)
        record = _graph_record(spec, result)
        record["task_inputs"] = {name: [None if axis in axes.get(name, {}) else int(size)
                                        for axis, size in enumerate(array.shape)]
                                 for name, array in tensors.items()}  # fmt: skip
        record["outputs_by_task"] = {"*": next(iter(spec.outputs_by_task.values()))}
        check = spec.make_inputs(CHECK_BATCH, CHECK_LENGTH)
        for task in tasks:
            _activate(backbone, task)
            baked = _specs(backbone, task)[index]
            values = task_tensors(baked.module, slot_names(baked.module, task.adapter_names))
            if set(values) != set(tensors):
                raise ValueError(f"{task.name!r} does not have the tensors of {first.name!r}'s graph: "
                                 f"{sorted(set(values) ^ set(tensors))[:4]}.")  # fmt: skip
            feed = check + tuple(torch.from_numpy(values[name]) for name in tensors)
            diff = compare_with_eager(baked.module, path, spec.input_names + list(tensors), spec.output_names,
                                      feed, eager_inputs=check)  # fmt: skip
            if diff > 1e-4:
                raise OnnxExportError(f"The swappable graph {spec.name!r} with {task.name!r}'s weights differs "
                                      f"from that task in eager PyTorch by {diff:.3g}; refusing.")  # fmt: skip
            record.setdefault("task_max_abs_diff", {})[task.name] = diff
            per_task[task.name].update(values)
        graphs[spec.name] = record
    for name, values in per_task.items():
        save_task_file(folder / TASKS_FOLDER / f"{name}.safetensors", values)
    _activate(backbone, first)
    return graphs


def _free_axes(module, slots, kind: str) -> dict[str, dict[int, str]]:
    """The class count of a classification head varies between tasks: its output axis is a free dimension."""
    if kind != CLASSIFICATION:
        return {}
    return {slots[name]: {0: "classes"} for name in slots if name in ("head.weight", "head.bias")}


def _graph_record(spec: GraphSpec, result) -> dict[str, Any]:
    return {
        "file": result.path.name, "inputs": spec.input_names, "outputs": spec.output_names,
        "dynamic_axes": {k: {str(a): n for a, n in v.items()} for k, v in spec.dynamic_axes.items()},
        "outputs_by_task": spec.outputs_by_task, "exporter": result.exporter,
        "dynamo_failure": result.fallback_reason, "max_abs_diff": result.max_abs_diff,
    }  # fmt: skip


def _task_record(task: ExportedTask, swappable: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": task.kind, "labels": task.labels, "source": str(task.folder)}
    if swappable:
        record["file"] = f"{TASKS_FOLDER}/{task.name}.safetensors"
    return record


def _backbone_record(backbone: Backbone, tasks: list[ExportedTask]) -> dict[str, Any]:
    described = next((t.description["backbone"] for t in tasks if t.description and "backbone" in t.description),
                     None)  # fmt: skip
    return described or {"name": backbone.name, "family": backbone.family}
