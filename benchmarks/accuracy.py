"""Accuracy next to the alternatives on real weights, offline: every method through the recipes themselves
(``--method``, ``--placement``), the same steps and batch for every method, the learning rate picked per method
from 3 values on a slice of the training data (trained on the rest, never on the validation set), then several
seeds at that rate on the real validation set.

    python benchmarks/accuracy.py                                    # the whole table (hours on 2 CPU cores)
    python benchmarks/accuracy.py --tasks sst2 --methods probe --steps 5 --seeds 0 --out /tmp/acc.jsonl  # smoke
    python benchmarks/accuracy.py --table-only                       # table and plot from the JSONL so far

Tasks: ``sst2`` (MiniLM, the bundled 20,000 phrases, validated on the 872 GLUE validation sentences), ``agnews``
(MiniLM, bundled 2,000 / 1,000, 4 classes), ``digits`` (Whisper tiny.en encoder, FSDD digits, validated on two
held-out speakers). Methods: full, probe, pfeiffer, houlsby, parallel, adapter_plus (when the installed code has
that placement), lora (peft, at Pfeiffer's parameter count) and adapterhub_pfeiffer (AdapterHub 1.3's SeqBnConfig
in the peer venv ``.venv-bench``, text tasks; ``benchmarks/accuracy_adapterhub.py``). Every cell runs in its own
process (peak memory = its peak RSS); results go to a JSONL line by line, and a rerun skips finished cells.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
if not PEER_PYTHON.exists():
    PEER_PYTHON = Path("/work/main/.venv-bench/bin/python")
TASKS = ("sst2", "agnews", "digits")
METHODS = ("full", "probe", "pfeiffer", "houlsby", "parallel", "adapter_plus", "lora", "adapterhub_pfeiffer")
LR_GRID = {"full": (2e-5, 5e-5, 1e-4), "probe": (1e-3, 3e-3, 1e-2)}
ADAPTER_LRS = (5e-4, 1e-3, 2e-3)
HELD_OUT = {"sst2": 500, "agnews": 300, "digits": 80}
"""Training rows held out of the training split to pick the learning rate on."""


def lr_grid(method: str) -> tuple[float, ...]:
    return LR_GRID.get(method, ADAPTER_LRS)


def has_adapter_plus() -> bool:
    from mm_adapters.config import AdapterConfig
    from mm_adapters.runner.config import Placement

    return hasattr(AdapterConfig, "adapter_plus") and "adapter_plus" in Placement.__args__


# -- data ------------------------------------------------------------------------------------------------------------
def read_rows(path: Path, delimiter: str) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def write_rows(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def task_data(task: str, phase: str, work: Path) -> str:
    """``--data`` for the task: the real split (``final``) or train minus a held-out slice vs that slice (``lr``)."""
    if task == "sst2" and phase == "final":
        return "bundled:sst2"
    folder = work / "data" / f"{task}_{phase}"
    if (folder / "done").is_file():
        return str(folder)
    if task == "digits":
        base = DATA / "fsdd"
        train = [
            {**r, "path": str((base / r["path"]).resolve())}
            for r in read_rows(base / "digit_speaker_train.csv", ",")
        ]
        val = [
            {**r, "path": str((base / r["path"]).resolve())}
            for r in read_rows(base / "digit_speaker_val.csv", ",")
        ]
        if phase == "lr":
            train, val = _split(train, HELD_OUT[task])
        write_rows(folder / "train.csv", train, ["path", "label"])
        write_rows(folder / "val.csv", val, ["path", "label"])
    else:
        source = DATA / "text" / task
        rows = {split: read_rows(source / f"{split}.tsv", "\t") for split in ("train", "validation")}
        train, val = rows["train"], rows["validation"]
        if phase == "lr":
            train, val = _split(train, HELD_OUT[task])
        for split, split_rows in (("train", train), ("validation", val)):
            write_rows(folder / f"{split}.csv", [{"text": r["sentence"], "label": r["label"]} for r in split_rows],
                       ["text", "label"])  # fmt: skip
    (folder / "done").write_text("")
    return str(folder)


def _split(rows: list[dict], held_out: int) -> tuple[list[dict], list[dict]]:
    """A seeded shuffle of the training rows: all but ``held_out`` to train, those to pick the lr on."""
    import random

    order = list(range(len(rows)))
    random.Random(1234).shuffle(order)
    return [rows[i] for i in order[held_out:]], [rows[i] for i in order[:held_out]]


# -- one cell --------------------------------------------------------------------------------------------------------
def cell_argv(cell: dict, data: str, output: Path) -> list[str]:
    """The recipe's command line for one cell (the recipe's demo preset: MiniLM at reduction 8, or Whisper
    tiny.en at reduction 16)."""
    method = cell["method"]
    argv = [
        "--preset", "demo", "--data", data, "--output-dir", str(output), "--resume", "none",
        "--max-steps", str(cell["steps"]), "--max-epochs", "1000", "--batch-size", str(cell["batch_size"]),
        "--lr", str(cell["lr"]), "--seed", str(cell["seed"]), "--warmup-steps", str(max(1, cell["steps"] // 10)),
    ]  # fmt: skip
    if method in ("full", "probe", "lora"):
        argv += ["--method", method]
    elif method == "adapterhub_pfeiffer":
        argv += [
            "--method",
            "probe",
        ]  # the recipe's head and data; AdapterHub adds its adapter to the backbone
    else:
        argv += ["--method", "adapter", "--placement", method]
    return argv


def run_cell_here(cell: dict, data: str, output: Path) -> dict:
    """Train and validate one cell in this process through the recipe; the report plus peak memory."""
    import resource

    import torch

    torch.set_num_threads(int(os.environ.get("ACCURACY_THREADS", "1")))
    recipe = "speech_digits" if cell["task"] == "digits" else "bert_text"
    sys.path.insert(0, str(ROOT))
    argv = cell_argv(cell, data, output)
    if cell["method"] == "adapterhub_pfeiffer":
        from accuracy_adapterhub import train_with_adapterhub

        report = train_with_adapterhub(argv)
    else:
        import importlib

        report = importlib.import_module(f"recipes.{recipe}").main(argv)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
    return {
        "val_acc": report["metrics"]["val_acc"],
        "trainable_params": report["trainable_params"],
        "trainable_percent": report["trainable_percent"],
        "steps_done": report["steps"],
        "wall_time_s": report["wall_time_s"],
        "peak_memory_mb": round(peak, 1),
        "lora_rank": report.get("lora_rank"),
    }


def run_cell(cell: dict, work: Path) -> dict:
    """One cell in a fresh process (the peer venv for AdapterHub)."""
    python = PEER_PYTHON if cell["method"] == "adapterhub_pfeiffer" else Path(sys.executable)
    data = task_data(cell["task"], cell["phase"], work)
    output = work / "runs" / key(cell).replace("|", "_")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}", "HF_HUB_OFFLINE": "1"}
    command = [str(python), str(Path(__file__).resolve()), "--cell", json.dumps(cell), "--cell-data", data,
               "--cell-output", str(output)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("ACCURACY_CELL ")]
    if done.returncode != 0 or not lines:
        return {**cell, "status": "failed", "error": (done.stderr or done.stdout)[-2000:]}
    return {**cell, "status": "ok", **json.loads(lines[-1].removeprefix("ACCURACY_CELL "))}


def key(cell: dict) -> str:
    return "|".join(str(cell[k]) for k in ("task", "method", "phase", "lr", "seed", "steps", "batch_size"))


# -- the table -------------------------------------------------------------------------------------------------------
def load_results(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    results = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {key(r): r for r in results if r.get("status") == "ok"}


def best_lr(results: dict[str, dict], task: str, method: str, steps: int, batch: int) -> float | None:
    """The lr with the best held-out accuracy among the 3 tried (None until all 3 are in)."""
    scores = {}
    for lr in lr_grid(method):
        cell = {
            "task": task,
            "method": method,
            "phase": "lr",
            "lr": lr,
            "seed": 0,
            "steps": steps,
            "batch_size": batch,
        }
        if key(cell) in results:
            scores[lr] = results[key(cell)]["val_acc"]
    return max(scores, key=scores.get) if len(scores) == len(lr_grid(method)) else None


def rows_of(results: dict[str, dict]) -> list[dict]:
    """One row per (task, method) with final-phase seeds: mean and spread of val_acc and the costs."""
    groups: dict[tuple, list[dict]] = {}
    for r in results.values():
        if r["phase"] == "final":
            groups.setdefault((r["task"], r["method"], r["steps"]), []).append(r)
    rows = []
    for (task, method, steps), runs in sorted(groups.items(), key=lambda item: (TASKS.index(item[0][0]),
                                                                                 METHODS.index(item[0][1]))):  # fmt: skip
        accs = [r["val_acc"] for r in runs]
        rows.append({
            "task": task, "method": method, "steps": steps, "lr": runs[0]["lr"], "seeds": len(runs),
            "mean": statistics.mean(accs), "spread": (max(accs) - min(accs)) / 2 if len(accs) > 1 else 0.0,
            "trainable_percent": runs[0]["trainable_percent"],
            "wall_time_s": statistics.mean(r["wall_time_s"] for r in runs),
            "peak_memory_mb": max(r["peak_memory_mb"] for r in runs),
        })  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| task | method | steps | lr | seeds | val acc (mean ± half-range) | trainable % | wall s | peak MB |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['method']} | {r['steps']} | {r['lr']:g} | {r['seeds']} | "
            f"{100 * r['mean']:.1f} ± {100 * r['spread']:.1f} | {r['trainable_percent']:.2f} | "
            f"{r['wall_time_s']:.0f} | {r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if any(r["task"] == t for r in rows)]
    if not tasks:
        return
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks, strict=True):
        mine = [r for r in rows if r["task"] == task]
        axis.barh([r["method"] for r in mine], [100 * r["mean"] for r in mine],
                  xerr=[100 * r["spread"] for r in mine], color="tab:blue")  # fmt: skip
        axis.set_title(f"{task} ({mine[0]['steps']} steps)")
        axis.set_xlabel("validation accuracy %")
        axis.invert_yaxis()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def lr_search_markdown(results: dict[str, dict]) -> str:
    """The held-out accuracy of every lr tried (seed 0, a slice of the training data), per task and method."""
    groups: dict[tuple, dict[float, float]] = {}
    for r in results.values():
        if r["phase"] == "lr":
            groups.setdefault((r["task"], r["method"], r["steps"]), {})[r["lr"]] = r["val_acc"]
    lines = ["| task | method | steps | held-out acc per lr |", "|---|---|---|---|"]
    for (task, method, steps), scores in groups.items():
        tried = ", ".join(f"{lr:g}: {100 * acc:.1f}" for lr, acc in sorted(scores.items()))
        lines.append(f"| {task} | {method} | {steps} | {tried} |")
    return "\n".join(lines) + "\n"


def write_table(results: dict[str, dict], markdown_path: Path) -> None:
    rows = rows_of(results)
    text = f"{markdown(rows)}\nLearning-rate search:\n\n{lr_search_markdown(results)}"
    markdown_path.write_text(text)
    plot(rows, markdown_path.with_suffix(".png"))
    print(text, flush=True)


# -- main ------------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument(
        "--steps", type=int, default=300, help="Optimizer steps of every run (CPU: shrink this)."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--digits-batch-size", type=int, default=16)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "accuracy.jsonl")
    parser.add_argument("--markdown", type=Path, default=ROOT / "benchmarks" / "accuracy_table.md")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "accuracy")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    parser.add_argument("--cell-data", help=argparse.SUPPRESS)
    parser.add_argument("--cell-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        result = run_cell_here(json.loads(args.cell), args.cell_data, args.cell_output)
        print("ACCURACY_CELL " + json.dumps(result), flush=True)
        return
    results = load_results(args.out)
    if args.table_only:
        write_table(results, args.markdown)
        return
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    for name, known in (("task", TASKS), ("method", METHODS)):
        unknown = [n for n in (tasks if name == "task" else methods) if n not in known]
        if unknown:
            parser.error(f"unknown {name} {unknown}; choose from {known}")
    seeds = [int(s) for s in args.seeds.split(",")]
    for task in tasks:
        batch = args.digits_batch_size if task == "digits" else args.batch_size
        for method in methods:
            if method == "adapter_plus" and not has_adapter_plus():
                print(
                    "[accuracy] adapter_plus: not a placement of the installed mm_adapters; skipped",
                    flush=True,
                )
                continue
            if method == "adapterhub_pfeiffer" and (task == "digits" or not PEER_PYTHON.exists()):
                print(f"[accuracy] adapterhub_pfeiffer: text tasks with {PEER_PYTHON} only; {task} skipped")
                continue
            base = {"task": task, "method": method, "steps": args.steps, "batch_size": batch}
            cells = [{**base, "phase": "lr", "lr": lr, "seed": 0} for lr in lr_grid(method)]
            for cell in cells:
                results = finish(cell, results, args)
            lr = best_lr(results, task, method, args.steps, batch)
            if lr is None:
                print(f"[accuracy] {task}/{method}: an lr run failed; no final runs", flush=True)
                continue
            for seed in seeds:
                results = finish({**base, "phase": "final", "lr": lr, "seed": seed}, results, args)
            write_table(results, args.markdown)
    write_table(results, args.markdown)


def finish(cell: dict, results: dict[str, dict], args: argparse.Namespace) -> dict[str, dict]:
    """Run ``cell`` unless the JSONL has it; append its result line."""
    if key(cell) in results:
        return results
    print(f"[accuracy] {key(cell)} ...", flush=True)
    result = run_cell(cell, args.work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as handle:
        handle.write(json.dumps(result) + "\n")
    shown = result.get("val_acc", result.get("error", "")[-300:])
    print(f"[accuracy]   {result['status']}: {shown}", flush=True)
    return {**results, key(cell): result} if result["status"] == "ok" else results


if __name__ == "__main__":
    main()
