"""Export folders for the ONNX tests, written by ``export_adapter`` from untrained task modules whose adapter
and head weights are random and non-zero (a zero-initialised adapter would hide a graph that drops it)."""

from __future__ import annotations

from pathlib import Path

import torch

import mm_adapters as mma
from mm_adapters.backbones import Backbone, wrap_backbone
from mm_adapters.lightning import ClassificationModule, CTCModule, RetrievalModule, export_adapter

from tiny_backbones import FACTORIES


def tiny(family: str, seed: int = 0) -> Backbone:
    """A fresh tiny backbone of ``family`` (the same weights for the same seed)."""
    return wrap_backbone(FACTORIES[family](seed).model).eval()


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Random non-zero values for every adapter, fusion and head parameter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if ".adapters." in name or ".fusions." in name or name.startswith("head."):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def write_export(
    backbone: Backbone,
    folder: Path,
    *,
    kind: str = "classification",
    name: str = "task",
    classes: int = 3,
    seed: int = 1,
    config: mma.AdapterConfig | None = None,
) -> Path:
    """Add adapter ``name`` to ``backbone``, randomise it and its head, export the task to ``folder``; the adapter
    is then deleted again so the backbone can take the next export."""
    mma.add_adapter(backbone.model, name, config or mma.AdapterConfig.pfeiffer(reduction_factor=4))
    if kind == "classification":
        module = ClassificationModule(backbone, classes, class_names=[f"c{i}" for i in range(classes)])
    elif kind == "ctc":
        module = CTCModule(backbone, tuple("abcdefg "))
    else:
        module = RetrievalModule(backbone)
    randomize(module, seed)
    path = export_adapter(module, folder, name)
    mma.delete_adapter(backbone.model, name)
    return path
