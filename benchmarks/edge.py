"""On the device: ONNX Runtime vs eager PyTorch on CPU for an adapter task, side by side in one run.

    python benchmarks/edge.py                      # BERT-base, ViT-B/16 (random weights), MiniLM (real); batch 1, 8
    python benchmarks/edge.py --quick              # tiny models, batch 1, 1 round: a smoke run
    python benchmarks/edge.py --models bert --batches 8 --json edge.json

Per model: a Pfeiffer adapter and a linear head (random, non-zero) exported with ``export_onnx`` as a baked fp32
graph, its int8 copy and a swappable graph with two tasks. Rows: latency ratios against eager PyTorch (median of
per-round ratios, settings alternating every round), swappable / baked, the time to switch task on a loaded
swappable session, and the file sizes. Targets (issue 20): fp32/eager <= 0.8, int8/eager <= 0.5,
swappable/baked <= 1.05, task switch <= 50 ms (BERT-base). Measure on a quiet machine: other work shows up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from measure import alternate, paired_ratio

import mm_adapters as mma
from mm_adapters.backbones import load_backbone, wrap_backbone
from mm_adapters.lightning import ClassificationModule, export_adapter, load_for_inference
from mm_adapters.onnx import OnnxTaskModel, export_onnx

SEQ, CLASSES = 128, 2


def build(name: str, quick: bool):
    """(backbone, make_inputs(batch) -> {input name: array})."""
    from transformers import BertConfig, BertModel, ViTConfig, ViTModel

    small = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
    torch.manual_seed(0)
    if name == "vit":
        config = ViTConfig(**(small | {"image_size": 64} if quick else {}))
        backbone = wrap_backbone(ViTModel(config, add_pooling_layer=False))
        size = config.image_size
        return backbone, lambda b: {"pixel_values": np.random.default_rng(0).standard_normal((b, 3, size, size),
                                                                                           dtype=np.float32)}  # fmt: skip
    if name == "minilm" and not quick:
        backbone = load_backbone("minilm", max_length=SEQ)
    else:
        config = BertConfig(**(small if quick else {}))
        backbone = wrap_backbone(BertModel(config, add_pooling_layer=False))
    seq = 16 if quick else SEQ

    def tokens(batch: int) -> dict:
        ids = np.random.default_rng(0).integers(1, 1000, (batch, seq), dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones((batch, seq), dtype=np.int64)}

    return backbone, tokens


def write_task(backbone, folder: Path, name: str, seed: int) -> Path:
    mma.add_adapter(backbone.model, name, mma.AdapterConfig.pfeiffer())
    module = ClassificationModule(backbone, CLASSES)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, parameter in module.named_parameters():
            if ".adapters." in key or key.startswith("head."):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    path = export_adapter(module, folder, name)
    mma.delete_adapter(backbone.model, name)
    return path


def measure(name: str, args, root: Path) -> dict:
    backbone, make_inputs = build(name, args.quick)
    backbone.eval()
    tasks = [write_task(backbone, root / f"{name}_{t}", t, seed) for seed, t in enumerate(("a", "b"))]
    started = time.perf_counter()
    baked = export_onnx(backbone, tasks[0], root / f"{name}_baked", quantize="int8")
    swappable = export_onnx(backbone, tasks, root / f"{name}_swappable", swappable=True)
    export_seconds = time.perf_counter() - started
    head = load_for_inference(backbone, tasks[0])
    sessions = {
        "fp32": OnnxTaskModel(baked, precision="fp32", threads=args.threads),
        "int8": OnnxTaskModel(baked, precision="int8", threads=args.threads),
        "swappable": OnnxTaskModel(swappable, task="a", threads=args.threads),
    }
    sizes = json.loads((baked / "onnx_export.json").read_text())["file_sizes"]
    task_sizes = json.loads((swappable / "onnx_export.json").read_text())["file_sizes"]
    row = {"model": name, "export_s": round(export_seconds, 1),
           "sizes_mb": {"fp32": sizes["model.onnx"] / 1e6, "int8": sizes["model.int8.onnx"] / 1e6,
                        "swappable_backbone": task_sizes["model.onnx"] / 1e6,
                        "task_file": task_sizes["tasks/a.safetensors"] / 1e6}}  # fmt: skip
    for batch in args.batches:
        inputs = make_inputs(batch)
        tensors = {key: torch.from_numpy(value) for key, value in inputs.items()}

        def eager(tensors=tensors):
            with torch.no_grad():
                return head(backbone(tensors))

        fns = [eager] + [lambda s=s, inputs=inputs: s.predict_batch(inputs) for s in sessions.values()]
        times = alternate(fns, torch.device("cpu"), args.warmup, args.repeats)
        ratios = {key: paired_ratio(times[i + 1], times[0]) for i, key in enumerate(sessions)}
        row[f"batch{batch}"] = {
            "eager_ms": statistics.median(times[0]) * 1e3,
            "fp32/eager": f"{ratios['fp32']}", "int8/eager": f"{ratios['int8']}",
            "swappable/baked": f"{paired_ratio(times[3], times[1])}",
        }  # fmt: skip
    switch = sessions["swappable"]
    switches = []
    for index in range(args.repeats * 2 + 1):
        started = time.perf_counter()
        switch.switch_task("b" if index % 2 == 0 else "a")
        switches.append(time.perf_counter() - started)
    row["task_switch_ms"] = statistics.median(switches) * 1e3
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=["bert", "vit", "minilm"], choices=["bert", "vit", "minilm"]
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads for both PyTorch and ONNX Runtime"
    )
    parser.add_argument("--quick", action="store_true", help="tiny models, batch 1, one round (a smoke run)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.warmup, args.repeats = [1], 1, 1
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(name, args, Path(folder)) for name in args.models]
    print("| model | batch | eager ms | fp32/eager | int8/eager | swappable/baked |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        for batch in args.batches:
            cell = row[f"batch{batch}"]
            print(f"| {row['model']} | {batch} | {cell['eager_ms']:.1f} | {cell['fp32/eager']} | "
                  f"{cell['int8/eager']} | {cell['swappable/baked']} |")  # fmt: skip
    print("\n| model | fp32 MB | int8 MB | swappable backbone MB | task file MB | task switch ms |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        s = row["sizes_mb"]
        print(f"| {row['model']} | {s['fp32']:.2f} | {s['int8']:.2f} | {s['swappable_backbone']:.2f} | "
              f"{s['task_file']:.4f} | {row['task_switch_ms']:.2f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
