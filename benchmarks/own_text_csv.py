"""A new user's text run: a folder with a 4,000-row train.csv (text,label with label names) and validation.csv,
trained with nothing but ``--data FOLDER --output-dir DIR`` (offline: the auto preset's real all-MiniLM-L6-v2).

The rows are the first 4,000 bundled SST-2 phrases and the 872 SST-2 validation sentences, written as a user
would: CSV, header text,label, labels "negative"/"positive". Prints the accuracy and the wall time.

    python benchmarks/own_text_csv.py --rows 4000 --output-dir /tmp/own_text
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("negative", "positive")


def write_folder(folder: Path, rows: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sources = {
        "train": ROOT / "data/text/sst2/train.tsv",
        "validation": ROOT / "data/text/sst2/validation.tsv",
    }
    for split, source in sources.items():
        with source.open(newline="") as handle:
            table = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        table = table[:rows] if split == "train" else table
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows([sentence.strip(), NAMES[int(label)]] for sentence, label in table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--output-dir", type=Path, default=Path("/tmp/own_text"))
    args = parser.parse_args()
    data, runs = args.output_dir / "my_reviews", args.output_dir / "run"
    write_folder(data, args.rows)
    started = time.perf_counter()
    command = [sys.executable, str(ROOT / "recipes/bert_text.py"), "--data", str(data), "--output-dir", str(runs),
               "--resume", "none"]  # fmt: skip
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    import json

    report = json.loads((runs / "metrics.json").read_text())
    print(
        f"\n{args.rows:,}-row user CSV, backbone {report['backbone']}, {report['steps']} steps: val_acc "
        f"{report['metrics']['val_acc']:.4f} on {sum(1 for _ in open(data / 'validation.csv')) - 1} sentences, "
        f"{wall:.0f} s wall (process start to exit; metrics.json says {report['wall_time_s']} s)"
    )


if __name__ == "__main__":
    main()
