"""Soak run: the ViT/CIFAR demo recipe for many short epochs, validating and checkpointing every epoch, to check that
process memory stays flat (no growth from cached graphs, hooks, metric states or feature caches).

    python benchmarks/soak.py                          # 40 epochs of 4 train + 4 val batches, bundled data
    python benchmarks/soak.py --max-epochs 200 --limit-train-batches 8

Every recipe option works (see ``recipes/vit_cifar.py --help``) after this script's own ``--max-growth-mib``. Writes ``soak.json`` to the output folder with the
resident set size (RSS) after every epoch, and exits with status 1 when memory grew by more than ``--max-growth-mib``
between the end of the first epoch (everything allocated once) and the end of the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for `recipes`

from mm_adapters.lightning import ClassificationModule  # noqa: E402
from mm_adapters.reliability import MemoryMonitor, peak_rss_mib, rss_mib  # noqa: E402
from mm_adapters.runner import start  # noqa: E402
from recipes import vit_cifar  # noqa: E402

DEFAULTS = ["--preset", "demo", "--max-epochs", "40", "--limit-train-batches", "4", "--limit-val-batches", "4",
            "--resume", "none", "--output-dir", "runs/soak"]  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--max-growth-mib", type=float, default=25.0, help="Allowed RSS growth (default: 25)."
    )
    args, recipe_argv = parser.parse_known_args(argv)
    run = start(vit_cifar.Config, vit_cifar.load_data, [*DEFAULTS, *recipe_argv], adapter="cifar10")
    datamodule, names = run.data
    settings = run.config
    module = ClassificationModule(run.backbone, len(names), lr=settings.lr, class_names=names)
    before = rss_mib()
    monitor = MemoryMonitor()
    trainer = run.trainer(callbacks=[monitor])
    run.fit(trainer, module, datamodule)
    run.write(run.evaluate(trainer, module, datamodule))
    records = monitor.records
    first, last = records[0], records[-1]
    report = {
        "epochs": len(records),
        "rss_before_training_mib": round(before, 1),
        "rss_first_epoch_mib": first["rss_mib"],
        "rss_last_epoch_mib": last["rss_mib"],
        "peak_rss_first_epoch_mib": first["peak_rss_mib"],
        "peak_rss_last_epoch_mib": last["peak_rss_mib"],
        "peak_rss_after_run_mib": round(peak_rss_mib(), 1),
        "rss_growth_mib": round(last["rss_mib"] - first["rss_mib"], 1),
        "max_growth_mib": args.max_growth_mib,
        "records": records,
    }
    (settings.output_dir / "soak.json").write_text(json.dumps(report, indent=2))
    print(
        f"\n[soak] {report['epochs']} epochs: RSS {first['rss_mib']:.1f} -> {last['rss_mib']:.1f} MiB "
        f"(growth {report['rss_growth_mib']:+.1f}), peak RSS {first['peak_rss_mib']:.1f} -> "
        f"{last['peak_rss_mib']:.1f} MiB; details in {settings.output_dir / 'soak.json'}"
    )
    if report["rss_growth_mib"] > args.max_growth_mib:
        sys.exit(f"error: RSS grew by {report['rss_growth_mib']} MiB, more than {args.max_growth_mib} MiB.")
    return report


if __name__ == "__main__":
    main()
