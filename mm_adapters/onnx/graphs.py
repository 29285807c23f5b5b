"""The torch modules an ONNX export traces: from a task's raw model inputs to its outputs.

One :class:`GraphSpec` per ONNX file: a module, the names of its inputs and outputs, example inputs and which
axes are dynamic. Classification and CTC tasks have one graph (``model``); a retrieval task has one per tower
(``image`` and ``text``), so a device can embed images and texts separately.

Inputs per modality (the batch contract of ``docs/architecture.md``): images ``pixel_values`` B x 3 x H x W;
text ``input_ids`` and ``attention_mask`` B x S; Wav2Vec2-like audio ``input_values`` and ``attention_mask``
B x T; Whisper ``input_features`` B x mel x window and ``feature_attention_mask`` B x window (the log-mel front
end runs before the graph, as ``preprocessing.json`` describes it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Backbone
from ..composition import Parallel
from ..composition.parallel import split_rows
from ..data.text import encode_texts

CLASSIFICATION, RETRIEVAL, CTC = "classification", "retrieval", "ctc"
TASKS = (CLASSIFICATION, RETRIEVAL, CTC)


@dataclass
class GraphSpec:
    """One ONNX graph to trace: ``module(*inputs)`` returns the tensors named ``output_names``."""

    name: str
    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    make_inputs: Callable[[int, int], tuple[torch.Tensor, ...]]
    """``make_inputs(batch, length)``: random inputs; ``length`` sets the dynamic sequence/time axis if any."""
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    """Per input name: {axis: symbolic name}."""
    outputs_by_task: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per task: {what: output name}, e.g. {"sst2": {"logits": "logits"}}."""


# -- the modules -------------------------------------------------------------------------------------------------
class _Inputs(nn.Module):
    """Turns positional graph inputs back into the batch dict the backbone takes."""

    def __init__(self, backbone: Backbone, input_names: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.input_names = list(input_names)

    def batch(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        return dict(zip(self.input_names, inputs, strict=True))


class ClassifierGraph(_Inputs):
    """Raw inputs -> ``logits`` B x classes (the head on the pooled features)."""

    def __init__(self, backbone: Backbone, head: nn.Module, input_names: list[str]) -> None:
        super().__init__(backbone, input_names)
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.batch(inputs)))


class ParallelClassifierGraph(_Inputs):
    """Several classification tasks in one pass (their adapters run as one :class:`~mm_adapters.Parallel`
    setup, which the caller activates): one logits output per task, in ``heads`` order."""

    def __init__(self, backbone: Backbone, heads: Mapping[str, nn.Module], input_names: list[str]) -> None:
        super().__init__(backbone, input_names)
        self.heads = nn.ModuleDict(dict(heads))
        self.labels = Parallel(*heads).labels

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.backbone(self.batch(inputs))
        per_task = split_rows(features, self.labels, inputs[0].shape[0])
        return tuple(head(per_task[name]) for name, head in self.heads.items())


class CTCGraph(_Inputs):
    """Raw audio inputs -> per-frame ``logits`` B x T' x vocabulary and the valid frame count ``lengths`` B."""

    def __init__(self, backbone: Backbone, head: nn.Module, input_names: list[str]) -> None:
        super().__init__(backbone, input_names)
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, lengths = self.backbone.frames(self.batch(inputs))
        return self.head(hidden), lengths


class EmbeddingGraph(_Inputs):
    """One tower of a retrieval model -> L2-normalised embeddings (after the CLIP-Adapter feature adapter of that
    tower when the export has one)."""

    def __init__(
        self, backbone: Backbone, tower: str, adapter: nn.Module | None, input_names: list[str]
    ) -> None:
        super().__init__(backbone, input_names)
        self.tower = tower
        self.head = adapter

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch = self.batch(inputs)
        if self.tower == "image":
            embeds = self.backbone.encode_image(batch["pixel_values"])
        else:
            embeds = self.backbone.encode_text(batch)
        return embeds if self.head is None else F.normalize(self.head(embeds), dim=-1)


# -- inputs per modality -----------------------------------------------------------------------------------------
def modality_of(backbone: Backbone) -> str:
    """Which raw input a classification/CTC graph of ``backbone`` takes: image, text, audio or log_mel."""
    if hasattr(backbone, "log_mel"):
        return "log_mel"
    if "image" in backbone.modalities:
        return "image"  # CLIP classifies images
    if "audio" in backbone.modalities:
        return "audio"
    if "text" in backbone.modalities:
        return "text"
    raise ValueError(f"Backbone {backbone.name!r} reads none of image, text or audio; it cannot be exported.")


def input_layout(backbone: Backbone, modality: str):
    """(input names, dynamic axes, ``make_inputs(batch, length)``) for ``modality``."""
    if modality == "image":
        size = backbone.image_size or 224

        def images(batch: int, length: int) -> tuple[torch.Tensor, ...]:
            return (torch.randn(batch, 3, size, size),)

        return ["pixel_values"], {"pixel_values": {0: "batch"}}, images
    if modality == "text":
        vocab = _vocab_size(backbone)
        takes_mask = _text_takes_mask(backbone)
        fixed = None if takes_mask else backbone.max_length  # open_clip: always its context length

        def tokens(batch: int, length: int) -> tuple[torch.Tensor, ...]:
            length = fixed or length
            ids = torch.randint(1, vocab, (batch, length))
            mask = torch.ones(batch, length, dtype=torch.long)
            mask[0, max(1, length // 2) :] = 0  # one padded row, so pooling under the mask is checked
            return (ids, mask) if takes_mask else (ids,)

        names = ["input_ids", "attention_mask"] if takes_mask else ["input_ids"]
        axes = {0: "batch"} if fixed else {0: "batch", 1: "sequence"}
        return names, {name: dict(axes) for name in names}, tokens
    if modality == "audio":

        def waves(batch: int, length: int) -> tuple[torch.Tensor, ...]:
            samples = 400 * length
            mask = torch.ones(batch, samples, dtype=torch.long)
            mask[0, samples * 3 // 4 :] = 0
            return torch.randn(batch, samples) * mask, mask

        names = ["input_values", "attention_mask"]
        return names, {name: {0: "batch", 1: "time"} for name in names}, waves
    if modality == "log_mel":
        mels, window = int(backbone.encoder.config.num_mel_bins), backbone.window_frames

        def log_mel(batch: int, length: int) -> tuple[torch.Tensor, ...]:
            mask = torch.ones(batch, window, dtype=torch.long)
            mask[0, window // 2 :] = 0
            return torch.randn(batch, mels, window), mask

        names = ["input_features", "feature_attention_mask"]
        return names, {name: {0: "batch"} for name in names}, log_mel
    raise ValueError(f"No graph inputs for modality {modality!r}.")


def _vocab_size(backbone: Backbone) -> int:
    model = backbone.model
    config = getattr(model, "config", None)
    text_config = getattr(config, "text_config", None) or config
    size = getattr(text_config, "vocab_size", None) or getattr(model, "vocab_size", None)
    if size is None and hasattr(model, "token_embedding"):
        size = model.token_embedding.num_embeddings  # open_clip
    return int(min(size or 1000, 1000))


def _text_takes_mask(backbone: Backbone) -> bool:
    """Whether the backbone's tokenizer gives an attention mask, as the training collators see it (open_clip's
    does not: its text tower reads the token ids alone, at its context length). Without a tokenizer (a model
    wrapped by hand, fed token ids by the caller) the graph takes a mask."""
    if backbone.tokenizer is None:
        return True
    return "attention_mask" in encode_texts(backbone.tokenizer, ["a"], backbone.max_length)


# -- building the specs ------------------------------------------------------------------------------------------
def classifier_spec(backbone: Backbone, task: str, head: nn.Module) -> GraphSpec:
    names, axes, make = input_layout(backbone, modality_of(backbone))
    return GraphSpec("model", ClassifierGraph(backbone, head, names), names, ["logits"], make, axes,
                     {task: {"logits": "logits"}})  # fmt: skip


def parallel_spec(backbone: Backbone, heads: Mapping[str, nn.Module]) -> GraphSpec:
    names, axes, make = input_layout(backbone, modality_of(backbone))
    outputs = [f"{task}.logits" for task in heads]
    return GraphSpec("model", ParallelClassifierGraph(backbone, heads, names), names, outputs, make, axes,
                     {task: {"logits": f"{task}.logits"} for task in heads})  # fmt: skip


def ctc_spec(backbone: Backbone, task: str, head: nn.Module) -> GraphSpec:
    modality = modality_of(backbone)
    if modality not in ("audio", "log_mel"):
        raise ValueError(f"A CTC task needs an audio backbone; {backbone.name!r} reads {modality}.")
    names, axes, make = input_layout(backbone, modality)
    return GraphSpec("model", CTCGraph(backbone, head, names), names, ["logits", "lengths"], make, axes,
                     {task: {"logits": "logits", "lengths": "lengths"}})  # fmt: skip


def retrieval_specs(backbone: Backbone, task: str, head: nn.Module | None) -> list[GraphSpec]:
    specs = []
    for tower in ("image", "text"):
        names, axes, make = input_layout(backbone, tower)
        adapter = None if head is None else head[tower] if tower in head else None
        output = f"{tower}_embeds"
        module = EmbeddingGraph(backbone, tower, adapter, names)
        specs.append(GraphSpec(tower, module, names, [output], make, axes, {task: {output: output}}))
    return specs
