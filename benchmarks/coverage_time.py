"""How long `make coverage` takes on quiet cores, from a sample: every k-th model of the sweep is built and checked
in this process and its CPU time measured (CPU time, not wall time, so a loaded machine still gives a fair figure),
then the mean is scaled to the whole population over ``--cores`` workers, plus each worker's start (imports).

    python benchmarks/coverage_time.py --every 30 --cores 2
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time
import warnings

import torch

from mm_adapters.coverage import candidates, check_model
from mm_adapters.coverage.check import Result


def _worker_start_seconds() -> float:
    """CPU seconds a fresh worker spends importing what the sweep imports."""
    code = "import time; import mm_adapters.coverage.pool, timm, open_clip, transformers; print(time.process_time())"
    return float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every", type=int, default=30, help="measure every k-th model of the sweep")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--models-per-worker", type=int, default=100, help="the pool's maxtasksperchild")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    everything = list(candidates())
    sample = everything[:: args.every]
    seconds = []
    for candidate in sample:
        started = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                check_model(candidate.build(), candidate.run, Result(candidate.library, candidate.name))
            except Exception:  # noqa: BLE001  (a model that does not build costs its attempt too)
                pass
        seconds.append(time.process_time() - started)
        print(f"{candidate.library:12} {candidate.name:50} {seconds[-1]:6.2f} s", flush=True)
    starts = -(-len(everything) // args.models_per_worker) * _worker_start_seconds()
    total = statistics.mean(seconds) * len(everything) + starts
    print(
        f"\n{len(sample)} of {len(everything)} models measured: mean {statistics.mean(seconds):.2f} CPU s, "
        f"max {max(seconds):.1f} s; worker starts {starts:.0f} s; the sweep needs about {total / 60:.1f} CPU "
        f"minutes, {total / 60 / args.cores:.1f} minutes on {args.cores} quiet cores"
    )


if __name__ == "__main__":
    main()
