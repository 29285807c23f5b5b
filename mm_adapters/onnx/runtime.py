"""``OnnxTaskModel``: run an ``export_onnx`` folder with ONNX Runtime and its ``preprocessing.json``.

``predict_batch(inputs) -> {task: logits}`` takes the graph's inputs (``prepare`` makes them from raw texts,
images or waveforms as the JSON says); the class names come from the export's labels. In a swappable folder one
task is bound at a time: :meth:`OnnxTaskModel.switch_task` loads another task's weight file into the live
sessions (its tensors become ``OrtValue``s bound once with ``IOBinding``; the backbone is not reloaded).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .export import MANIFEST_FILE, TASKS_FOLDER
from .inputs import prepare_inputs
from .task_weights import load_task_file


class OnnxTaskModel:
    """An ONNX export folder, loaded. ``precision`` is ``"fp32"`` or ``"int8"`` (default: int8 when the folder
    has it); ``task`` picks the task bound first in a swappable folder (default: the first)."""

    def __init__(
        self,
        folder: str | os.PathLike,
        *,
        precision: str | None = None,
        task: str | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.folder = Path(folder)
        path = self.folder / MANIFEST_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{self.folder} has no {MANIFEST_FILE}; pass a folder export_onnx wrote.")
        self.manifest = json.loads(path.read_text(encoding="utf-8"))
        self.preprocessing = self.manifest["preprocessing"]
        quantized = self.manifest.get("quantized")
        self.precision = precision or ("int8" if quantized else "fp32")
        if self.precision not in ("fp32", "int8") or (self.precision == "int8" and not quantized):
            raise ValueError(
                f"precision {self.precision!r}: this folder has fp32{' and int8' * bool(quantized)}."
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.sessions = {}
        for name, graph in self.manifest["graphs"].items():
            file = graph["int8"]["file"] if self.precision == "int8" else graph["file"]
            self.sessions[name] = ort.InferenceSession(
                str(self.folder / file), options, providers=["CPUExecutionProvider"]
            )
        self._bound: dict[str, dict[str, Any]] = {}
        self.task: str | None = None
        if self.swappable:
            self.switch_task(task or self.task_names[0])
        elif task is not None and task not in self.task_names:
            raise ValueError(f"No task {task!r} in {self.folder}; it has {self.task_names}.")

    # -- what the folder holds --------------------------------------------------------------------------------------
    @property
    def swappable(self) -> bool:
        return bool(self.manifest.get("swappable"))

    @property
    def task_names(self) -> list[str]:
        return list(self.manifest["tasks"])

    @property
    def input_names(self) -> dict[str, list[str]]:
        """Per graph, the raw inputs it takes."""
        return {name: list(graph["inputs"]) for name, graph in self.manifest["graphs"].items()}

    def class_names(self, task: str | None = None) -> list[str] | None:
        labels = self.manifest["tasks"][task or self._current()].get("labels") or {}
        names = labels.get("class_names")
        return list(names) if names else None

    # -- running ---------------------------------------------------------------------------------------------------
    def switch_task(self, task: str) -> None:
        """Bind ``task``'s weights (a swappable folder): its file is read and copied into ONNX Runtime once."""
        import onnxruntime as ort

        if not self.swappable:
            raise ValueError(f"{self.folder} bakes its tasks into the graph; it has no task files to switch.")
        if task not in self.manifest["tasks"]:
            raise ValueError(f"No task {task!r} in {self.folder}; it has {self.task_names}.")
        bound = {}
        for name, graph in self.manifest["graphs"].items():
            expected = {key: tuple(shape) for key, shape in graph["task_inputs"].items()}
            tensors = load_task_file(self.folder / TASKS_FOLDER / f"{task}.safetensors", expected)
            bound[name] = {key: ort.OrtValue.ortvalue_from_numpy(tensors[key]) for key in expected}
        self._bound, self.task = bound, task

    def predict_batch(self, inputs: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray] | np.ndarray]:
        """Run every graph whose inputs are all in ``inputs`` (numpy arrays or tensors). Returns ``{task:
        logits}`` for classification and CTC (CTC also gives ``{task + ".lengths": frames}``), ``{task:
        {"image_embeds": ..., "text_embeds": ...}}`` for retrieval (the towers given)."""
        arrays = {key: _numpy(value) for key, value in inputs.items()}
        results: dict[str, Any] = {}
        ran = False
        for name, graph in self.manifest["graphs"].items():
            if not all(key in arrays for key in graph["inputs"]):
                continue
            ran = True
            outputs = dict(zip(graph["outputs"], self._run(name, graph, arrays), strict=True))
            for task, mapping in self._outputs_by_task(graph).items():
                kind = self.manifest["tasks"][task]["kind"]
                if kind == "retrieval":
                    results.setdefault(task, {}).update({what: outputs[out] for what, out in mapping.items()})
                else:
                    results[task] = outputs[mapping["logits"]]
                    if "lengths" in mapping:
                        results[f"{task}.lengths"] = outputs[mapping["lengths"]]
        if not ran:
            raise ValueError(
                f"The inputs {sorted(arrays)} feed none of the graphs; they take {self.input_names}."
            )
        return results

    def labels(self, logits: np.ndarray, task: str | None = None) -> list:
        """The predicted class per row: its name when the task names its classes, else its id."""
        ids = np.asarray(logits).argmax(axis=-1).tolist()
        names = self.class_names(task)
        return [names[i] for i in ids] if names else ids

    def prepare(self, samples: Sequence[Any], graph: str | None = None) -> dict[str, np.ndarray]:
        """Graph inputs from raw samples (texts, images or paths, waveforms) as ``preprocessing.json`` says."""
        return prepare_inputs(self.folder, self.preprocessing, samples, graph)

    def _run(self, name: str, graph: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        session = self.sessions[name]
        if not self.swappable:
            return session.run(list(graph["outputs"]), {key: arrays[key] for key in graph["inputs"]})
        binding = session.io_binding()
        for key in graph["inputs"]:
            binding.bind_cpu_input(key, np.ascontiguousarray(arrays[key]))
        for key, value in self._bound[name].items():
            binding.bind_ortvalue_input(key, value)
        for key in graph["outputs"]:
            binding.bind_output(key)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def _outputs_by_task(self, graph: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        by_task = graph["outputs_by_task"]
        return {self.task: by_task["*"]} if "*" in by_task else by_task

    def _current(self) -> str:
        if self.task is not None:
            return self.task
        if len(self.task_names) == 1:
            return self.task_names[0]
        raise ValueError(f"{self.folder} holds tasks {self.task_names}; name one.")


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
