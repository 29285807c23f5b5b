"""How long the local-data check takes on a big folder: generate N small PNG files (imagefolder train/ +
validation/) or wav clips (+ CSV), then time load_local_data, which decodes every file once.

    python benchmarks/local_data_check.py --files 10000 --workers 2            # images
    python benchmarks/local_data_check.py --files 10000 --workers 2 --audio    # 1 s wav clips at 16 kHz
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from mm_adapters.data import load_local_data

CLASSES = ("a", "b", "c", "d")


def make_images(root: Path, files: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(files):
        split = "validation" if i % 10 == 0 else "train"
        folder = root / split / CLASSES[i % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def make_clips(root: Path, files: int, seconds: float) -> None:
    rng = np.random.default_rng(0)
    (root / "clips").mkdir(parents=True)
    rows: dict[str, list[list[str]]] = {"train": [], "validation": []}
    for i in range(files):
        name = f"clips/{i}.wav"
        soundfile.write(
            root / name, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000
        )
        rows["validation" if i % 10 == 0 else "train"].append([name, CLASSES[i % len(CLASSES)]])
    for split, split_rows in rows.items():
        with (root / f"{split}.csv").open("w", newline="") as handle:
            csv.writer(handle).writerows([["file", "label"], *split_rows])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--audio", action="store_true", help="wav clips + CSV instead of PNG images")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        (
            make_clips(root, args.files, args.seconds)
            if args.audio
            else make_images(root, args.files, args.size)
        )
        generated = time.perf_counter() - started
        started = time.perf_counter()
        data = load_local_data(
            root, "audio" if args.audio else "image", num_workers=args.workers, sample_rate=16000
        )
        checked = time.perf_counter() - started
    kind = f"{args.seconds:g} s wav clips" if args.audio else f"{args.size}x{args.size} PNG files"
    print(data.summary())
    print(
        f"\n{args.files:,} {kind}: generated in {generated:.1f} s; found, read and decoded (every file once, "
        f"{args.workers} workers) in {checked:.1f} s = {args.files / checked:,.0f} files/s"
    )


if __name__ == "__main__":
    main()
