"""Serving many task adapters on one backbone: mixed-task batches routed per row vs single-task serving vs
grouping requests by task and switching adapters per group.

    python benchmarks/serving.py --quick                         # tiny BERT and ViT, smoke run (seconds)
    python benchmarks/serving.py                                 # BERT-base (128 tokens) and ViT-B/16, CPU
    python benchmarks/serving.py --device cuda --batch 64 --clients 128 --json serving.json

Per model and number of Pfeiffer task adapters loaded (1, 8, 64, 1,000; random non-zero weights of real size),
closed-loop clients each keep one request outstanding, every request for a uniformly random task; the server
takes up to ``--batch`` waiting requests per forward pass (a dynamic batcher), in one process (no HTTP: this
measures the model side). Set-ups, run round-robin in the same process:

- ``single``: every request for the same task, that adapter active (the throughput a one-task server gets);
- ``routed-gather`` / ``routed-loop``: ``Route`` over all tasks, ``set_row_tasks`` per batch (the two kernels);
- ``grouped``: each batch split by task, ``set_active_adapters`` per group, one forward pass per group (what an
  AdapterHub or peft user does).

Reported: throughput (requests/s), routed / single (targets >= 0.9 at 8 tasks, >= 0.8 at 1,000), routed / grouped
(target >= 2 at 64 tasks), p50 / p99 request latency, and resident memory per added adapter (RSS, or CUDA memory
allocated, after loading and stacking, divided by the count) against one adapter's safetensors file (target within
10%). Timings on a machine shared with other work are meaningless; re-measure on a quiet one.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import transformers  # noqa: E402

import mm_adapters as mma  # noqa: E402
from mm_adapters import AdapterConfig, Route, set_row_tasks  # noqa: E402
from mm_adapters.serialization import WEIGHTS_FILE  # noqa: E402

SETUPS = ("single", "routed-gather", "routed-loop", "grouped")


def build_model(name: str, quick: bool, seq_len: int = 128):
    """(model, one request's input, a label) with random weights; ``quick``: hidden 64, 2 layers."""
    torch.manual_seed(0)
    small = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
    if name == "bert":
        config = transformers.BertConfig(**small) if quick else transformers.BertConfig()
        seq_len = 16 if quick else seq_len
        model = transformers.BertModel(config, add_pooling_layer=False)

        def make_input(seed: int) -> dict:
            ids = torch.randint(
                1000, config.vocab_size, (seq_len,), generator=torch.Generator().manual_seed(seed)
            )
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

        return model.eval(), make_input, f"BERT-base ({seq_len} tokens)" if not quick else "tiny BERT"
    config = (
        transformers.ViTConfig(**small, image_size=32, patch_size=8) if quick else transformers.ViTConfig()
    )
    model = transformers.ViTModel(config, add_pooling_layer=False)

    def make_input(seed: int) -> dict:
        size = config.image_size
        return {"pixel_values": torch.randn(3, size, size, generator=torch.Generator().manual_seed(seed))}

    return model.eval(), make_input, "ViT-B/16 (224 px)" if not quick else "tiny ViT"


def resident_bytes(device: torch.device) -> int:
    """CUDA: memory allocated; CPU: the process's resident set after returning freed heap to the OS."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.memory_allocated(device)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load_tasks(model, count: int, device: torch.device) -> tuple[list[str], dict]:
    """Add ``count`` Pfeiffer adapters (random, non-zero), stack them under a Route; memory per adapter vs file."""
    names = [f"task{i:04d}" for i in range(count)]
    before = resident_bytes(device)
    config = AdapterConfig.pfeiffer(init="bert")
    with torch.no_grad():
        for name in names:
            mma.add_adapter(model, name, config, set_active=False)
        mma.set_active_adapters(model, Route(*names))
        set_row_tasks(model, torch.zeros(1, dtype=torch.long))  # stacks the adapters
    after = resident_bytes(device)
    with tempfile.TemporaryDirectory() as folder:
        mma.save_adapter(model, names[0], Path(folder) / names[0])
        file_size = (Path(folder) / names[0] / WEIGHTS_FILE).stat().st_size
    per_adapter = (after - before) / count
    return names, {
        "bytes_per_adapter": per_adapter,
        "file_bytes": file_size,
        "ratio": per_adapter / file_size,
    }


def drop_tasks(model, names: list[str]) -> None:
    mma.set_active_adapters(model, None)
    for name in names:
        mma.delete_adapter(model, name)


def serve(model, setup: str, names, inputs, args, device, rng: random.Random) -> tuple[float, list[float]]:
    """A closed loop of ``args.clients`` clients for ``args.requests`` requests: (requests/s, latencies in s)."""
    if setup == "single":
        mma.set_active_adapters(model, names[0])
    elif setup.startswith("routed"):
        mma.set_active_adapters(model, Route(*names, kernel=setup.split("-")[1]))
    keys = list(inputs[0])
    stacked = {key: torch.stack([x[key] for x in inputs]).to(device) for key in keys}

    def pick(rows: list[int]) -> dict:
        index = torch.tensor(rows, device=device)
        return {key: value.index_select(0, index) for key, value in stacked.items()}

    def new_request(client: int, now: float) -> tuple:
        task = 0 if setup == "single" else rng.randrange(len(names))
        return (client, now, task, rng.randrange(len(inputs)))

    start = time.perf_counter()
    queue = [new_request(client, start) for client in range(args.clients)]
    latencies: list[float] = []
    while len(latencies) < args.requests:
        batch, queue = queue[: args.batch], queue[args.batch :]
        done_at = run_batch(model, setup, names, batch, pick, device)
        for request, finished in zip(batch, done_at, strict=True):
            latencies.append(finished - request[1])
            queue.append(new_request(request[0], finished))
    return len(latencies) / (time.perf_counter() - start), latencies


def run_batch(model, setup, names, batch, pick, device) -> list[float]:
    """Run one server batch; when each request of it finished."""
    rows = [request[3] for request in batch]
    with torch.inference_mode():
        if setup != "grouped":
            if setup.startswith("routed"):
                set_row_tasks(model, torch.tensor([request[2] for request in batch]))
            model(**pick(rows))
            sync(device)
            return [time.perf_counter()] * len(batch)
        groups: dict[int, list[int]] = {}
        for position, request in enumerate(batch):
            groups.setdefault(request[2], []).append(position)
        done = [0.0] * len(batch)
        for task, positions in groups.items():
            mma.set_active_adapters(model, names[task])
            model(**pick([rows[p] for p in positions]))
            sync(device)
            for position in positions:
                done[position] = time.perf_counter()
        return done


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_model(name: str, args, device) -> list[dict]:
    model, make_input, label = build_model(name, args.quick, args.seq_len)
    model.to(device)
    inputs = [make_input(seed) for seed in range(args.clients)]
    warm, _ = load_tasks(
        model, 1, device
    )  # first-use allocations (kernels, lazy imports) stay out of the figures
    serve(model, "routed-gather", warm, inputs, args, device, random.Random(0))
    drop_tasks(model, warm)
    rows = []
    for count in args.tasks:
        names, memory = load_tasks(model, count, device)
        rng = random.Random(count)
        setups = [s for s in SETUPS if s in args.setups and not (count == 1 and s == "grouped")]
        results = {s: {"throughput": [], "latencies": []} for s in setups}
        for _ in range(args.warmup):
            for setup in setups:
                serve(model, setup, names, inputs, args, device, rng)
        for _ in range(args.rounds):
            for setup in setups:
                throughput, latencies = serve(model, setup, names, inputs, args, device, rng)
                results[setup]["throughput"].append(throughput)
                results[setup]["latencies"].extend(latencies)
        row = {"model": label, "tasks": count, "memory": memory, "setups": {}}
        for setup, measured in results.items():
            row["setups"][setup] = {
                "requests_per_s": sorted(measured["throughput"])[len(measured["throughput"]) // 2],
                "p50_ms": 1000 * percentile(measured["latencies"], 0.5),
                "p99_ms": 1000 * percentile(measured["latencies"], 0.99),
            }
        rows.append(row)
        print_row(row, flush=True)
        drop_tasks(model, names)
    return rows


def ratio(row: dict, setup: str, reference: str) -> float | None:
    setups = row["setups"]
    if setup not in setups or reference not in setups:
        return None
    return setups[setup]["requests_per_s"] / setups[reference]["requests_per_s"]


def print_row(row: dict, flush: bool = False) -> None:
    memory = row["memory"]
    best = max(
        (s for s in row["setups"] if s.startswith("routed")), key=lambda s: row["setups"][s]["requests_per_s"]
    )
    parts = [
        f"{row['model']:<24} {row['tasks']:>5} tasks",
        *(
            f"{s} {v['requests_per_s']:8.1f} req/s p50 {v['p50_ms']:7.1f} ms p99 {v['p99_ms']:7.1f} ms"
            for s, v in row["setups"].items()
        ),
        f"best routed ({best}) / single {_fmt(ratio(row, best, 'single'))}, / grouped {_fmt(ratio(row, best, 'grouped'))}",
        f"gather / loop {_fmt(ratio(row, 'routed-gather', 'routed-loop'))}",
        f"memory per adapter {memory['bytes_per_adapter'] / 1e6:.3f} MB, file {memory['file_bytes'] / 1e6:.3f} MB "
        f"(x{memory['ratio']:.2f})",
    ]
    print("\n    ".join(parts), flush=flush)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and few requests (a smoke run)")
    parser.add_argument("--models", default="bert,vit", help="comma-separated: bert, vit")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 8, 64, 1000])
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=SETUPS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seq-len", type=int, default=128, help="BERT tokens per request")
    parser.add_argument("--batch", type=int, default=None, help="largest server batch (default 16; GPU 64)")
    parser.add_argument("--clients", type=int, default=None, help="closed-loop clients (default 2 x batch)")
    parser.add_argument("--requests", type=int, default=None, help="requests per set-up and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch = args.batch or (64 if device.type == "cuda" else 16)
    args.clients = args.clients or 2 * args.batch
    args.requests = args.requests or (4 * args.batch if args.quick else 16 * args.batch)
    if args.quick:
        args.rounds, args.warmup = min(args.rounds, 2), min(args.warmup, 1)
    print(
        f"device {device}, batch <= {args.batch}, {args.clients} closed-loop clients, {args.requests} requests per "
        f"set-up and round, {args.rounds} rounds (median), torch threads {torch.get_num_threads()}",
        flush=True,
    )
    rows = [row for name in args.models.split(",") for row in bench_model(name.strip(), args, device)]
    if args.json:
        args.json.write_text(
            json.dumps({"device": str(device), "args": _plain(vars(args)), "rows": rows}, indent=2)
        )
    return 0


def _plain(values: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


if __name__ == "__main__":
    sys.exit(main())
