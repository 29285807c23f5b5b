"""Soak run: the ViT/CIFAR demo recipe for many short epochs, validating and checkpointing every epoch, to check that
process memory stays flat (no growth from cached graphs, hooks, metric states or feature caches).

    python benchmarks/soak.py                          # 40 epochs of 4 train + 4 val batches, bundled data
    python benchmarks/soak.py --max-epochs 200 --limit-train-batches 8

Every recipe option works (see ``recipes/vit_cifar.py --help``). Writes ``soak.json`` to the output folder with the
resident set size (RSS) after every epoch, and exits with status 1 when memory grew by more than ``--max-growth-mib``
between the end of the first epoch (everything allocated once) and the end of the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))

import common  # noqa: E402
import vit_cifar  # noqa: E402

from mm_adapters.lightning import ClassificationModule  # noqa: E402
from mm_adapters.reliability import MemoryMonitor, peak_rss_mib, rss_mib  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = common.build_parser(__doc__, vit_cifar.PRESETS)
    parser.add_argument(
        "--max-growth-mib", type=float, default=25.0, help="Allowed RSS growth (default: 25)."
    )
    parser.set_defaults(
        preset="demo", max_epochs=40, limit_train_batches=4, limit_val_batches=4, resume="none",
        output_dir=Path("runs/soak"),
    )  # fmt: skip
    args = parser.parse_args(argv)
    prepared = common.prepare(args, "soak", vit_cifar.PRESETS, vit_cifar.load_data, adapter_name="cifar10")
    datamodule, names = prepared.data
    settings = prepared.settings
    module = ClassificationModule(prepared.backbone, len(names), lr=settings.lr, class_names=names)
    before = rss_mib()
    monitor = MemoryMonitor()
    common.train_and_report(prepared, module, datamodule, callbacks=[monitor])
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
