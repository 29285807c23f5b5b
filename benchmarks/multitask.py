"""Multi-task inference: N task adapters on one frozen backbone, every task's output for one batch.

    .venv-bench/bin/python benchmarks/multitask.py --quick     # BERT and ViT, N = 2 and 8, batch 2, 2 rounds
    .venv-bench/bin/python benchmarks/multitask.py             # N = 2, 4, 8, dropping 0 and 5 layers, batch 8
    .venv-bench/bin/python benchmarks/multitask.py --device cuda --batch 32

Per model, N and AdapterDrop setting, three set-ups with copies of the same random weights run round-robin:
``separate`` (N forward passes, switching the active adapter between them), ``parallel`` (mm_adapters
``Parallel``: the layers below the first adapted one run once, then the batch branches) and ``adapterhub``
(AdapterHub's ``Parallel``, replicating the batch at the first adapter it runs, with ``skip_layers`` for the drop).
Speed-ups are the median over rounds of ``time(separate) / time(set-up)`` in the same round; peak memory is what
one call allocates beyond the weights. Needs the peer environment (``make bench``) for the AdapterHub column;
without ``adapters`` installed it is left out.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("KINETO_LOG_LEVEL", "5")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from measure import alternate, peak_bytes  # noqa: E402
from models import MODELS  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import mm_adapters as mma  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 2 and 8, batch 2, 1 warm-up + 2 rounds")
    parser.add_argument("--models", default="bert,vit")
    parser.add_argument("--tasks", default=None, help="comma-separated N values (default 2,4,8)")
    parser.add_argument("--drops", default="0,5", help="comma-separated numbers of lower layers to drop")
    parser.add_argument("--batch", type=int, default=None, help="samples per batch (default 8; --quick: 2)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5; --quick: 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-adapterhub", action="store_true", help="leave out the AdapterHub column")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    args.models = args.models.split(",")
    args.tasks = [int(n) for n in (args.tasks or ("2,8" if args.quick else "2,4,8")).split(",")]
    args.drops = [int(n) for n in args.drops.split(",")]
    args.batch = args.batch or (2 if args.quick else 8)
    args.repeats = args.repeats or (2 if args.quick else 5)
    return args


def _inputs(bench, batch: int, device: torch.device) -> dict:
    return {k: v for k, v in bench.make_inputs(batch, device).items() if k not in ("labels", "index")}


def ours(base: torch.nn.Module, names: list[str], drop: int):
    """(separate passes, Parallel) over two copies of ``base`` with the same N Pfeiffer adapters."""
    model = copy.deepcopy(base)
    for name in names:
        mma.add_adapter(model, name, mma.AdapterConfig.pfeiffer())
    with torch.no_grad():  # non-zero adapters, so that the outputs differ per task
        for site in mma.state.iter_sites(model):
            for adapter in site.adapters.values():
                adapter.up.weight.normal_(0, 0.02)
    parallel = copy.deepcopy(model)
    mma.set_active_adapters(parallel, mma.Parallel(*names))
    mma.set_adapter_drop(model, drop)
    mma.set_adapter_drop(parallel, drop)

    def separate_passes(inputs):
        outputs = []
        for name in names:
            mma.set_active_adapters(model, name)
            outputs.append(model(**inputs).last_hidden_state)
        return outputs

    def one_pass(inputs):
        return parallel(**inputs).last_hidden_state

    return separate_passes, one_pass


def adapterhub(base: torch.nn.Module, names: list[str], drop: int):
    import adapters  # the peer library, only in the benchmark environment
    from adapters.composition import Parallel

    model = copy.deepcopy(base)
    adapters.init(model)
    for name in names:
        model.add_adapter(name, config=adapters.SeqBnConfig(reduction_factor=16))
    model.set_active_adapters(Parallel(*names), skip_layers=list(range(drop)) or None)
    model.eval()
    return lambda inputs: model(**inputs).last_hidden_state


def bench_case(bench, base, n: int, drop: int, args, device: torch.device) -> dict:
    names = [f"task{i}" for i in range(n)]
    inputs = _inputs(bench, args.batch, device)
    separate, parallel = ours(base, names, drop)
    setups = {"separate": separate, "parallel": parallel}
    if not args.no_adapterhub:
        try:
            setups["adapterhub"] = adapterhub(base, names, drop)
        except ImportError:
            print(
                "AdapterHub `adapters` is not installed here: run in .venv-bench for that column.",
                file=sys.stderr,
            )
            args.no_adapterhub = True
    with torch.inference_mode():
        expected = separate(inputs)
        got = parallel(inputs).split(args.batch)
        error = max((a - b).abs().max().item() for a, b in zip(got, expected, strict=True))
        fns = [lambda f=f: f(inputs) for f in setups.values()]
        times = dict(zip(setups, alternate(fns, device, args.warmup, args.repeats), strict=True))
        memory = {name: peak_bytes(lambda f=f: f(inputs), device) for name, f in setups.items()}
        flops = {name: _flops(f, inputs) for name, f in setups.items()}
    result = {"model": bench.name, "tasks": n, "drop": drop, "max_abs_diff": error}
    for name in setups:
        result[f"speedup_{name}"] = statistics.median(
            s / t for s, t in zip(times["separate"], times[name], strict=True)
        )
        result[f"peak_mb_{name}"] = memory[name] / 2**20
        result[f"flop_ratio_{name}"] = flops["separate"] / flops[name]
    if "adapterhub" in setups:
        result["parallel_vs_adapterhub"] = statistics.median(
            a / p for a, p in zip(times["adapterhub"], times["parallel"], strict=True)
        )
    return result


def _flops(fn, inputs) -> int:
    """FLOPs one call runs (load-independent, unlike the times)."""
    # the fused residual add of mm_adapters' up-projection runs as the in-place addmm_, which the counter
    # does not know: count it like addmm
    mapping = {torch.ops.aten.addmm_: _addmm_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn(inputs)
    return counter.get_total_flops()


def _addmm_flops(self_shape, a_shape, b_shape, *args, **kwargs) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def table(results: list[dict]) -> str:
    hub = "speedup_adapterhub" in results[0]
    head = (
        "| model | N | dropped | Parallel speed-up | AdapterHub Parallel speed-up | AdapterHub time / ours "
        "| peak MB: N passes, Parallel, AdapterHub | FLOPs of N passes / Parallel, / AdapterHub |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        peaks = [f"{r['peak_mb_separate']:.0f}", f"{r['peak_mb_parallel']:.0f}"]
        if hub:
            peaks.append(f"{r['peak_mb_adapterhub']:.0f}")
        lines.append(
            f"| {r['model']} | {r['tasks']} | {r['drop']} | {r['speedup_parallel']:.2f}x | "
            + (f"{r['speedup_adapterhub']:.2f}x | {r['parallel_vs_adapterhub']:.2f}x |" if hub else "- | - |")
            + f" {', '.join(peaks)} | {r['flop_ratio_parallel']:.2f}"
            + (f", {r['flop_ratio_adapterhub']:.2f} |" if hub else " |")
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = []
    for key in args.models:
        bench = MODELS[key]()
        base = bench.build().to(device).requires_grad_(False)
        for drop in args.drops:
            for n in args.tasks:
                result = bench_case(bench, base, n, drop, args, device)
                print(result, flush=True)
                results.append(result)
    text = table(results)
    print(
        f"\nspeed-up = median over {args.repeats} rounds of time(N separate passes) / time(set-up); AdapterHub time / "
        f"ours > 1: ours is faster; batch {args.batch}, {device}, {torch.get_num_threads()} threads\n"
    )
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
