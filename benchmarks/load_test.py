"""Loopback load test of ``mm-adapters serve``: many text tasks on one backbone, concurrent closed-loop clients,
a share of bad requests; checks 0 server errors, 0 wrong answers, 4xx for every bad request and flat memory.

    # the full run (MiniLM, real SST-2 and AG News adapters plus 6 more, 20,000 requests):
    python recipes/bert_text.py --preset demo --output-dir runs/load/sst2 --name sst2
    python recipes/bert_text.py --backbone minilm --data data/text/agnews --output-dir runs/load/agnews --name agnews
    python benchmarks/load_test.py --exports runs/load/sst2/adapter runs/load/agnews/adapter --extra 6 \\
        --requests 20000 --clients 16
    # a small smoke run (demo backbone, 8 generated tasks):
    python benchmarks/load_test.py --backbone demo-bert --extra 8 --requests 300

Every answer is checked against ``mm-adapters predict`` run offline on the same texts (label equal, probability
within ``--tolerance``). The server runs as its own process (``python -m mm_adapters serve``) on a free
127.0.0.1 port and is stopped at the end; its resident memory is sampled through the run. Writes
``load_test.json`` to ``--output-dir`` and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_adapters.data import agnews_tsv, sst2_tsv  # noqa: E402
from mm_adapters.data.tables import read_table  # noqa: E402

MAX_BODY_MB = 1
"""The server's body limit here, so the too-large requests stay small on the wire."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--exports", nargs="*", default=[], help="Trained export folders (text tasks, one backbone)."
    )
    parser.add_argument("--backbone", default="minilm", help="Backbone of the generated extra tasks.")
    parser.add_argument(
        "--extra", type=int, default=6, help="Extra tasks with random heads on that backbone."
    )
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--bad-share", type=float, default=0.05, help="Share of bad requests.")
    parser.add_argument(
        "--texts", type=int, default=500, help="Distinct texts (SST-2 and AG News validation)."
    )
    parser.add_argument(
        "--tolerance", type=float, default=1e-4, help="Largest probability difference allowed."
    )
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=0.05,
        help="Largest (highest - lowest) / lowest resident memory over the second half of the run.",
    )
    parser.add_argument("--timeout", type=float, default=3600, help="Seconds before the run gives up.")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/load_test"))
    return parser.parse_args(argv)


def generated_exports(backbone_name: str, count: int, root: Path) -> list[str]:
    """``count`` tasks with random heads (3-5 classes) on ``backbone_name``, exported as a recipe would."""
    import torch

    from mm_adapters import AdapterConfig, add_adapter, set_active_adapters
    from mm_adapters.backbones import load_backbone
    from mm_adapters.lightning import ClassificationModule, export_adapter

    backbone, folders = load_backbone(backbone_name), []
    for i in range(count):
        name = f"task{i}"
        add_adapter(backbone.model, name, AdapterConfig.preset("pfeiffer", reduction_factor=16))
        set_active_adapters(backbone.model, name)
        classes = 3 + i % 3
        module = ClassificationModule(backbone, classes, class_names=[f"c{j}" for j in range(classes)])
        with torch.no_grad():
            module.head.weight.normal_(generator=torch.Generator().manual_seed(i))
        folders.append(str(export_adapter(module, root / name, name=name)))
    return folders


def texts(count: int) -> list[str]:
    rows = [*read_table(sst2_tsv("validation")).column(0), *read_table(agnews_tsv("validation")).column(0)]
    random.Random(0).shuffle(rows)
    return rows[:count]


def offline_answers(exports: list[str], pool: list[str], folder: Path) -> dict[tuple[str, str], dict]:
    """(text, task) -> answer, from ``mm-adapters predict`` on every text."""
    from mm_adapters.cli import predict

    source, out = folder / "texts.txt", folder / "offline.jsonl"
    source.write_text("".join(text.replace("\n", " ") + "\n" for text in pool), encoding="utf-8")
    if predict.main([*exports, str(source), "-o", str(out), "--quiet"]) != 0:
        raise SystemExit("offline predict failed")
    answers = {}
    for text, line in zip(pool, out.read_text(encoding="utf-8").splitlines(), strict=True):
        row = json.loads(line)
        answers.update({(text, task): answer for task, answer in row.items() if task != "input"})
    return answers


def bad_request(rng: random.Random, tasks: list[str]) -> dict:
    """A request the server must refuse with a 4xx: (json body or raw bytes, expected status)."""
    kind = rng.choice(["unknown_task", "empty_text", "wrong_modality", "not_json", "too_large", "no_input"])
    task = rng.choice(tasks)
    return {
        "unknown_task": {"json": {"task": "no-such-task", "text": "hello"}},
        "empty_text": {"json": {"task": task, "text": "  "}},
        "wrong_modality": {"json": {"task": task, "image": "aGVsbG8="}},
        "not_json": {"data": b"{oops", "headers": {"content-type": "application/json"}},
        "too_large": {"json": {"task": task, "text": "x" * (MAX_BODY_MB * 1024 * 1024 + 10)}},
        "no_input": {"json": {"task": task}},
    }[kind] | {"kind": kind}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(exports: list[str], port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mm_adapters", "serve", *exports, "--port", str(port), "--host", "127.0.0.1",
               "--max-body-mb", str(MAX_BODY_MB)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.5)
    server.kill()
    raise SystemExit("the server did not start within 600 s")


def run(args: argparse.Namespace) -> dict:
    args.output_dir.mkdir(parents=True, exist_ok=True)
    exports = [*args.exports, *generated_exports(args.backbone, args.extra, args.output_dir / "generated")]
    pool = texts(args.texts)
    expected = offline_answers(exports, pool, args.output_dir)
    tasks = sorted({task for _, task in expected})
    rng = random.Random(1)
    plan = [
        bad_request(rng, tasks)
        if rng.random() < args.bad_share
        else {"text": rng.choice(pool), "task": rng.choice(tasks)}
        for _ in range(args.requests)
    ]
    port = free_port()
    server = start_server(exports, port)
    process = psutil.Process(server.pid)
    rss: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample_memory() -> None:
        while not stop.is_set():
            rss.append((time.monotonic(), process.memory_info().rss / 2**20))
            stop.wait(0.5)

    local = threading.local()

    def send(job: dict) -> tuple[dict, int, dict | None, float]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        url = f"http://127.0.0.1:{port}/predict"
        began = time.perf_counter()
        if "kind" in job:
            options = {key: job[key] for key in ("json", "data", "headers") if key in job}
            answer = session.post(url, timeout=120, **options)
        else:
            answer = session.post(url, json={"task": job["task"], "text": job["text"]}, timeout=120)
        elapsed = time.perf_counter() - began
        body = (
            answer.json() if answer.headers.get("content-type", "").startswith("application/json") else None
        )
        return job, answer.status_code, body, elapsed

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.clients) as clients:
            answers = clients.map(send, plan, timeout=args.timeout)
            results = list(tqdm(answers, total=len(plan), desc="requests", unit="req", mininterval=2))
    finally:
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
        server.terminate()
        server.wait(timeout=60)
    return summarise(args, results, expected, rss, wall, len(tasks))


def summarise(args, results, expected, rss, wall, task_count) -> dict:
    server_errors = sum(status >= 500 for _, status, _, _ in results)
    bad = [(job, status) for job, status, _, _ in results if "kind" in job]
    bad_not_4xx = [job["kind"] for job, status in bad if not 400 <= status < 500]
    wrong, largest = 0, 0.0
    for job, status, body, _ in results:
        if "kind" in job or status != 200:
            continue
        got, want = body["predictions"][job["task"]], expected[(job["text"], job["task"])]
        difference = abs(got["probability"] - want["probability"])
        largest = max(largest, difference)
        wrong += got["label"] != want["label"] or difference > args.tolerance
    good_failed = sum(status != 200 for job, status, _, _ in results if "kind" not in job)
    latencies = sorted(elapsed for job, _, _, elapsed in results if "kind" not in job)
    half = [mib for _, mib in rss[len(rss) // 2 :]] or [0.0]
    spread = (max(half) - min(half)) / min(half) if min(half) else 0.0  # highest vs lowest, not just the ends
    report = {
        "requests": len(results),
        "bad_requests": len(bad),
        "tasks": task_count,
        "clients": args.clients,
        "server_errors": server_errors,
        "wrong_answers": wrong,
        "good_requests_not_200": good_failed,
        "bad_requests_not_4xx": len(bad_not_4xx),
        "largest_probability_difference": largest,
        "throughput_rps": round(len(results) / wall, 1),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
        "rss_mib_second_half": [round(half[0], 1), round(max(half), 1), round(half[-1], 1)],
        "rss_spread_second_half": round(spread, 4),
        "wall_s": round(wall, 1),
    }
    report["passed"] = (
        server_errors == 0 and wrong == 0 and good_failed == 0 and not bad_not_4xx
        and spread <= args.max_rss_growth
    )  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    report = run(args)
    (args.output_dir / "load_test.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
