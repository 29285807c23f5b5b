"""Real weights on the device: labels from fp32 ONNX vs PyTorch, and int8 accuracy, on a recipe's validation set.

    python recipes/bert_text.py --preset demo --output-dir runs/bert_text          # MiniLM SST-2 (~4 min quiet)
    python benchmarks/edge_accuracy.py --recipe bert_text --export runs/bert_text/adapter
    python recipes/speech_digits.py --preset demo --output-dir runs/speech_digits  # Whisper tiny.en (~30 s quiet)
    python benchmarks/edge_accuracy.py --recipe speech_digits --export runs/speech_digits/adapter

The export is loaded with ``load_for_inference`` on the recipe's preset backbone, exported with ``export_onnx``
(fp32 and int8), and the recipe's validation loader is run through all three. Targets (issue 20): fp32 ONNX labels
equal PyTorch's on every sample; int8 loses at most 0.5 points of accuracy. Whisper batches are turned into log-mel
inputs by the runner's ``prepare`` (``preprocessing.json``), the way a device would.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from mm_adapters import runner
from mm_adapters.backbones import load_backbone
from mm_adapters.lightning import load_for_inference
from mm_adapters.onnx import OnnxTaskModel, export_onnx

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def graph_inputs(model: OnnxTaskModel, batch: dict) -> dict:
    """The ONNX graph's inputs for a validation batch (Whisper: raw clips through ``prepare``)."""
    names = model.input_names["model"]
    if "input_features" in names:
        lengths = batch["attention_mask"].sum(dim=-1).tolist()
        clips = [row[: int(n)].numpy() for row, n in zip(batch["input_values"], lengths, strict=True)]
        return model.prepare(clips)
    return {name: batch[name].numpy() for name in names}


def evaluate(recipe: str, export: Path, preset: str, limit: int | None) -> dict:
    sys.path.insert(0, str(RECIPES))
    module = importlib.import_module(recipe)
    config = runner.parse_config(module.Config, ["--preset", preset])
    backbone = load_backbone(config.backbone)
    data, _ = module.load_data(config, backbone)
    data.setup("validate")
    with tempfile.TemporaryDirectory() as folder:
        out = export_onnx(backbone, export, Path(folder) / "onnx", quantize="int8")
        sizes = json.loads((out / "onnx_export.json").read_text())["file_sizes"]
        fp32, int8 = OnnxTaskModel(out, precision="fp32"), OnnxTaskModel(out, precision="int8")
        head = load_for_inference(backbone, export)
        task = fp32.task_names[0]
        found = {"torch": [], "fp32": [], "int8": [], "labels": []}
        for batch in data.val_dataloader():
            with torch.no_grad():
                found["torch"] += head(backbone(batch)).argmax(-1).tolist()
            inputs = graph_inputs(fp32, batch)
            found["fp32"] += np.argmax(fp32.predict_batch(inputs)[task], -1).tolist()
            found["int8"] += np.argmax(int8.predict_batch(inputs)[task], -1).tolist()
            found["labels"] += batch["labels"].tolist()
            if limit and len(found["labels"]) >= limit:
                break
    labels = np.array(found["labels"])
    accuracy = {
        key: float((np.array(found[key]) == labels).mean() * 100) for key in ("torch", "fp32", "int8")
    }
    return {
        "recipe": recipe, "samples": len(labels),
        "fp32_labels_equal_torch": int(sum(a == b for a, b in zip(found["fp32"], found["torch"], strict=True))),
        "accuracy": accuracy, "int8_loss_points": accuracy["torch"] - accuracy["int8"],
        "sizes_mb": {name: size / 1e6 for name, size in sizes.items() if name.endswith(".onnx")},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", required=True, choices=["bert_text", "speech_digits"])
    parser.add_argument("--export", required=True, type=Path, help="the adapter folder the recipe exported")
    parser.add_argument("--preset", default="demo", help="the recipe preset the export was trained with")
    parser.add_argument("--limit", type=int, help="stop after this many validation samples (a smoke run)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    if not args.export.is_dir():
        parser.error(f"--export {args.export} does not exist; train it first (see this script's docstring).")
    torch.set_num_threads(1)
    result = evaluate(args.recipe, args.export, args.preset, args.limit)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
