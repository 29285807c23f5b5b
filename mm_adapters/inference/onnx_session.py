"""``mm-adapters predict`` on an ``export-onnx`` folder: ONNX Runtime and the folder's ``preprocessing.json``, with the
answers :meth:`InferenceSession.predict` gives (classification: label, probability, top-k; CTC: the transcript).

Inputs are read as the PyTorch path reads them (images and audio through the data code's decoders) and prepared by
:meth:`mm_adapters.onnx.OnnxTaskModel.prepare`, the code a device would mirror. Retrieval graphs are refused here:
their towers are run with ``OnnxTaskModel`` directly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.audio import read_audio
from ..data.vocabulary import CharVocabulary
from .batches import InputItem
from .exports import UsageError
from .session import top_answers

_INPUTS = {"text": "text", "image": "image", "audio": "audio", "log_mel": "audio"}


class OnnxSession:
    """One ``export-onnx`` folder (one or several tasks), answering per input like :class:`InferenceSession`."""

    def __init__(self, folder: str | os.PathLike, precision: str | None = None) -> None:
        try:
            from ..onnx import OnnxTaskModel

            self.model = OnnxTaskModel(Path(folder).expanduser(), precision=precision)
        except ImportError as error:
            raise UsageError(f"ONNX folders need onnxruntime: pip install 'mm_adapters[onnx]' ({error}).",
                             "export") from None  # fmt: skip
        except (ValueError, FileNotFoundError, json.JSONDecodeError, KeyError) as error:
            raise UsageError(f"Cannot load the ONNX export {folder}: {error}", "export") from None
        self.kinds = {name: info["kind"] for name, info in self.model.manifest["tasks"].items()}
        retrieval = [name for name, kind in self.kinds.items() if kind not in ("classification", "ctc")]
        if retrieval:
            raise UsageError(
                f"{folder}: predict runs ONNX classification and CTC tasks; {retrieval} are {self.kinds[retrieval[0]]} "
                "graphs: run their towers with mm_adapters.onnx.OnnxTaskModel.",
                "export",
            )
        self.modality = _INPUTS[self.model.preprocessing["inputs"]]
        self.sample_rate = self.model.preprocessing.get("sample_rate")

    @property
    def tasks(self) -> list[str]:
        return list(self.kinds)

    def check_tasks(self, names: Sequence[str]) -> list[str]:
        unknown = [name for name in names if name not in self.kinds]
        if unknown:
            raise UsageError(f"Unknown task {unknown[0]!r}; this ONNX export has {self.tasks}.", "task")
        return list(names)

    def predict(
        self, items: Sequence[InputItem], tasks: Sequence[str], top_k: int = 1
    ) -> list[dict[str, Any]]:
        samples = [self._sample(item) for item in items]
        results: list[dict[str, Any]] = [{} for _ in items]
        outputs: dict[str, Any] = {}
        for name in self.check_tasks(tasks):
            if self.model.swappable and self.model.task != name:
                self.model.switch_task(name)
                outputs = {}
            if name not in outputs:
                outputs = self.model.predict_batch(self.model.prepare(samples))
            if self.kinds[name] == "ctc":
                for row, text in zip(results, self._transcripts(name, outputs), strict=True):
                    row[name] = {"transcript": text}
                continue
            probabilities = torch.from_numpy(np.asarray(outputs[name], dtype=np.float32)).softmax(dim=-1)
            names = self.model.class_names(name) or [str(i) for i in range(probabilities.shape[-1])]
            for row, answer in zip(results, top_answers(probabilities, names, top_k), strict=True):
                row[name] = answer
        return results

    def _transcripts(self, name: str, outputs: dict[str, Any]) -> list[str]:
        labels = self.model.manifest["tasks"][name].get("labels") or {}
        vocabulary = CharVocabulary(tuple(labels.get("vocabulary") or ()))
        best = np.asarray(outputs[name]).argmax(axis=-1)
        lengths = np.asarray(outputs.get(f"{name}.lengths", [best.shape[1]] * len(best))).reshape(-1)
        return [
            vocabulary.decode_ctc(row[: int(length)].tolist())
            for row, length in zip(best, lengths, strict=True)
        ]

    def _sample(self, item: InputItem) -> Any:
        if item.modality != self.modality:
            raise UsageError(f"This ONNX export reads {self.modality} inputs, not {item.modality} ({item.id}).",
                             "input")  # fmt: skip
        if self.modality != "audio":
            return item.value
        try:  # the graph's own normalisation (preprocessing.json) runs in prepare
            return read_audio(item.value, int(self.sample_rate), normalize=False).numpy()
        except (ValueError, OSError) as error:
            raise UsageError(f"Cannot read audio input {item.id}: {error}", "audio") from None
