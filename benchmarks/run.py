"""Adapter training and inference benchmark: mm_adapters vs full fine-tuning, AdapterHub ``adapters`` and peft.

    python benchmarks/run.py --quick             # BERT and ViT, 2 rounds (a few minutes on 2 CPU cores)
    python benchmarks/run.py                     # all four models
    python benchmarks/run.py --device cuda --bf16 --sizes gpu [--compile]

Every figure is a ratio measured in this one process: the set-ups are run round-robin (after warm-up rounds),
each round's time is divided by the reference's time in the same round, and the table shows the median ratio
with the range over rounds in brackets. See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the CPU memory profiler quiet
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from measure import alternate, matmul_tflops, paired_ratio, peak_bytes, tensor_bytes  # noqa: E402
from models import MODELS  # noqa: E402
from setups import METHODS, Setup, all_setups, compile_setups  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

SIZES = {
    "cpu": {"bert": 8, "vit": 8, "wav2vec2": 4, "clip": 8},
    "gpu": {"bert": 64, "vit": 128, "wav2vec2": 32, "clip": 128},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="BERT and ViT only, 2 timed rounds on the CPU")
    parser.add_argument("--models", default=None, help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="mm_adapters / AdapterHub methods to run"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip AdapterHub and peft")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--sizes", choices=sorted(SIZES), default=None, help="batch sizes (default: by device)"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="one batch size for every model (smoke tests)"
    )
    parser.add_argument(
        "--bf16", action="store_true", help="bf16 autocast; frozen weights in bf16, trained in fp32"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile every set-up's model")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    parser.add_argument("--json", type=Path, default=None, help="write raw numbers to this file")
    args = parser.parse_args(argv)
    args.models = args.models.split(",") if args.models else (["bert", "vit"] if args.quick else list(MODELS))
    args.methods = tuple(args.methods.split(","))
    gpu = args.device.startswith("cuda")
    args.warmup = args.warmup if args.warmup is not None else (2 if gpu else 1)
    args.repeats = args.repeats if args.repeats is not None else (5 if gpu else 2 if args.quick else 3)
    args.sizes = args.sizes or ("gpu" if gpu else "cpu")
    return args


class Runner:
    """Runs one set-up's training step and inference forward on fixed inputs."""

    def __init__(self, setup: Setup, bench, inputs: dict, device: torch.device, bf16: bool) -> None:
        self.setup, self.bench, self.inputs, self.device = setup, bench, inputs, device
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        )

    def train_step(self) -> None:
        setup = self.setup
        setup.optimizer.zero_grad(set_to_none=True)
        with setup.batch_context(self.inputs), self.autocast():
            loss = self.bench.loss(setup.runner, setup.head, self.inputs)
        loss.backward()
        setup.optimizer.step()

    def forward(self) -> None:
        with torch.no_grad(), self.autocast():
            self.bench.features(self.setup.runner, self.inputs)

    def persistent_bytes(self) -> int:
        setup = self.setup
        tensors = list(setup.model.parameters()) + list(setup.model.buffers())
        tensors += list(setup.head.parameters()) if setup.head is not None else []
        tensors += [
            t for state in setup.optimizer.state.values() for t in state.values() if torch.is_tensor(t)
        ]
        cache_bytes = setup.cache.store.used_bytes if setup.cache is not None else 0
        return tensor_bytes(tensors) + cache_bytes

    def train_flops(self) -> int:
        counter = FlopCounterMode(display=False)
        runner, self.setup.runner = self.setup.runner, self.setup.model  # count on the eager model
        try:
            with counter:
                self.train_step()
        finally:
            self.setup.runner = runner
        return counter.get_total_flops()


def bench_model(key: str, args, device: torch.device) -> dict:
    torch._dynamo.reset()  # every set-up is its own model object: give each model the full recompile budget
    bench = MODELS[key]()
    batch = args.batch or SIZES[args.sizes][key]
    base = bench.build()
    inputs = bench.make_inputs(batch, device)
    inputs["index"] = torch.arange(batch)
    setups = all_setups(
        bench, base, device, args.methods, torch.bfloat16 if args.bf16 else None, peers=not args.no_peers
    )
    del base
    if args.compile:
        compile_setups(setups)
    runners = [Runner(s, bench, inputs, device, args.bf16) for s in setups]

    for s in setups:
        s.model.train()
    train = alternate([r.train_step for r in runners], device, args.warmup, args.repeats)
    flops = [r.train_flops() for r in runners] if device.type == "cuda" else [None] * len(runners)
    memory = []
    for r in runners:
        r.setup.optimizer.zero_grad(set_to_none=True)
        memory.append(r.persistent_bytes() + peak_bytes(r.train_step, device))

    for s in setups:
        s.model.eval()
    infer_runners = [r for r in runners if r.setup.method != "top-half+cache"]
    infer = alternate([r.forward for r in infer_runners], device, args.warmup, args.repeats)
    infer_by_label = dict(zip((r.setup.label for r in infer_runners), infer, strict=True))

    rows = []
    full_train, base_infer = train[0], infer[0]
    by_key = {(s.library, s.method): i for i, s in enumerate(setups)}
    for i, s in enumerate(setups):
        row = {
            "label": s.label,
            "library": s.library,
            "method": s.method,
            "trainable": s.trainable(),
            "train": paired_ratio(train[i], full_train),
            "train_s": sorted(train[i])[len(train[i]) // 2],
            "memory_bytes": memory[i],
            "memory": memory[i] / memory[0],
            "infer": paired_ratio(infer_by_label[s.label], base_infer) if s.label in infer_by_label else None,
            "infer_s": sorted(infer_by_label[s.label])[len(train[i]) // 2]
            if s.label in infer_by_label
            else None,
            "flops": flops[i],
        }
        peer = by_key.get(("adapters", s.method)) if s.library == "mm_adapters" else None
        if peer is not None:
            row["vs_adapterhub_train"] = paired_ratio(train[i], train[peer])
            if s.label in infer_by_label:
                row["vs_adapterhub_infer"] = paired_ratio(
                    infer_by_label[s.label], infer_by_label[setups[peer].label]
                )
        rows.append(row)
    del setups, runners, infer_runners
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"model": bench.name, "batch": batch, "rows": rows}


def machine(device: torch.device, args) -> str:
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    precision = "bf16 autocast (frozen weights bf16, trained fp32)" if args.bf16 else "fp32"
    return (
        f"{what}; torch {torch.__version__}, transformers {transformers.__version__}, {precision}"
        f"{', torch.compile' if args.compile else ', eager'}; {args.warmup} warm-up + {args.repeats} timed rounds"
    )


def fmt_ratio(ratio) -> str:
    return "—" if ratio is None else format(ratio)


def table(results: list[dict], peak_tflops: float | None) -> str:
    gpu = peak_tflops is not None
    head = "| model | set-up | trainable | train step / full FT | peak mem / full FT | forward / base | ours / AdapterHub (train; forward) |"
    rule = "|---|---|---|---|---|---|---|"
    if gpu:
        head += " TFLOP/s (train) | of matmul peak |"
        rule += "---|---|"
    lines = [head, rule]
    for result in results:
        rows = result["rows"]
        full = rows[0]
        for row in rows:
            trainable = f"{row['trainable'] / full['trainable']:.2%} ({row['trainable'] / 1e6:.2f} M)"
            train = f"{fmt_ratio(row['train'])}" if row is not full else f"1 ({row['train_s'] * 1e3:.0f} ms)"
            infer = fmt_ratio(row["infer"]) if row is not full else f"1 ({row['infer_s'] * 1e3:.0f} ms)"
            memory = (
                f"{row['memory']:.2f}" if row is not full else f"1 ({row['memory_bytes'] / 2**20:.0f} MiB)"
            )
            versus = "—"
            if "vs_adapterhub_train" in row:
                versus = f"{row['vs_adapterhub_train']}; {fmt_ratio(row.get('vs_adapterhub_infer'))}"
            model = f"{result['model']}, batch {result['batch']}" if row is full else ""
            line = f"| {model} | {row['label']} | {trainable} | {train} | {memory} | {infer} | {versus} |"
            if gpu:
                tflops = row["flops"] / row["train_s"] / 1e12
                line += f" {tflops:.0f} | {tflops / peak_tflops:.0%} |"
            lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch._dynamo.config.cache_size_limit = 64  # one compiled graph per set-up and mode, all alive at once
    torch._dynamo.config.accumulated_cache_size_limit = 512
    peak = matmul_tflops(device, torch.bfloat16) if device.type == "cuda" else None
    results = []
    for key in args.models:
        print(f"[bench] {key} ...", file=sys.stderr, flush=True)
        results.append(bench_model(key, args, device))
        text = f"Machine: {machine(device, args)}"
        if peak is not None:
            text += f"; measured bf16 matmul peak {peak:.0f} TFLOP/s (8192^3)"
        text += "\n\n" + table(results, peak)
        if args.markdown:  # after every model, so that a run cut short keeps what it measured
            args.markdown.write_text(text + "\n")
        if args.json:
            raw = {"machine": machine(device, args), "peak_tflops": peak, "results": results}
            args.json.write_text(json.dumps(raw, default=lambda o: o.__dict__, indent=1))
    print(text)


if __name__ == "__main__":
    main()
