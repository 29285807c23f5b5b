"""Rebuild the bundled demo subsets in this folder from full local copies of the source data sets.

Provenance record, not part of the library: run once by a maintainer, e.g.
    python data/make_subsets.py --source /path/to/full/data
where the source folder holds cifar10/, fsdd/, coco_mini/ and text/ as described in data/README.md.
Every choice (counts, seed, split) is fixed here so the subsets can be rebuilt bit for bit.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SEED = 0
CIFAR_PER_CLASS = {"train": 100, "test": 50}
FSDD_INDICES = {"train": range(0, 6), "val": range(6, 8)}
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FSDD_HELD_OUT_SPEAKERS = ("lucas", "theo")  # one DEU/German and one USA/neutral speaker; the other four train
ACCENT_NAMES = {"USA/neutral": "usa", "DEU/German": "german", "GRC/Greek": "greek", "BEL/French": "belgian_french"}
COCO_MAX_SIDE = 224
SST2_TRAIN_SIZE = 20000
SST2_MIN_WORDS = 6
"""The demo trains on phrases of at least this many words: closer to the whole sentences it is validated on."""
AGNEWS_PER_CLASS = {"train": 500, "validation": 250}


def copy_cifar10(source: Path) -> None:
    for split, per_class in CIFAR_PER_CLASS.items():
        for class_dir in sorted((source / "cifar10" / split).iterdir()):
            target = HERE / "cifar10" / split / class_dir.name
            target.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.glob("*.jpg"))[:per_class]:
                shutil.copyfile(image, target / image.name)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def copy_fsdd(source: Path) -> None:
    target = HERE / "fsdd"
    (target / "recordings").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "fsdd" / "speakers.csv", target / "speakers.csv")
    with (source / "fsdd" / "speakers.csv").open() as handle:
        accents = {row["speaker"]: ACCENT_NAMES[row["accent"]] for row in csv.DictReader(handle)}
    metadata, accent_rows, asr_rows = [], {"train": [], "val": []}, {"train": [], "val": []}
    for speaker in sorted(accents):
        for digit in range(10):
            for split, indices in FSDD_INDICES.items():
                for index in indices:
                    name = f"{digit}_{speaker}_{index}.wav"
                    shutil.copyfile(source / "fsdd" / "recordings" / name, target / "recordings" / name)
                    path = f"recordings/{name}"
                    metadata.append([path, str(digit), speaker, str(index), accents[speaker], split])
                    accent_rows[split].append([path, accents[speaker]])
                    asr_rows[split].append([path, DIGIT_WORDS[digit]])
    write_csv(target / "metadata.csv", ["path", "digit", "speaker", "index", "accent", "split"], metadata)
    for split in FSDD_INDICES:
        write_csv(target / f"accent_{split}.csv", ["path", "label"], accent_rows[split])
        write_csv(target / f"asr_{split}.csv", ["path", "transcript"], asr_rows[split])
    write_speaker_splits(target, metadata)


def write_speaker_splits(target: Path, metadata: list[list[str]]) -> None:
    """Digit classification and ASR split by speaker: held-out speakers are never heard in training."""
    for split in ("train", "val"):
        rows = [row for row in metadata if (row[2] in FSDD_HELD_OUT_SPEAKERS) == (split == "val")]
        digits = [[row[0], DIGIT_WORDS[int(row[1])]] for row in rows]
        write_csv(target / f"digit_speaker_{split}.csv", ["path", "label"], digits)
        write_csv(target / f"asr_speaker_{split}.csv", ["path", "transcript"], digits)


def copy_coco_mini(source: Path) -> None:
    for split in ("train2017", "val2017"):
        target = HERE / "coco_mini" / split
        target.mkdir(parents=True, exist_ok=True)
        captions = json.loads((source / "coco_mini" / f"captions_{split}.json").read_text())
        for record in captions["images"]:
            with Image.open(source / "coco_mini" / split / record["file_name"]) as image:
                image = image.convert("RGB")
                image.thumbnail((COCO_MAX_SIDE, COCO_MAX_SIDE), Image.Resampling.BICUBIC)
                image.save(target / record["file_name"], quality=85)
                record["width"], record["height"] = image.size
        (HERE / "coco_mini" / f"captions_{split}.json").write_text(json.dumps(captions))


def read_tsv(path: Path, has_header: bool) -> list[list[str]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:] if has_header else rows


def write_tsv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["sentence\tlabel"]
    for sentence, label in rows:
        assert "\t" not in sentence and "\n" not in sentence, sentence
        lines.append(f"{sentence}\t{label}")
    path.write_text("\n".join(lines) + "\n")


def balanced_sample(rows: list[list[str]], per_class: int, rng: random.Random) -> list[list[str]]:
    by_label: dict[str, list[list[str]]] = {}
    for row in rows:
        by_label.setdefault(row[1], []).append(row)
    picked = [row for label in sorted(by_label) for row in rng.sample(by_label[label], per_class)]
    rng.shuffle(picked)
    return picked


def copy_text(source: Path) -> None:
    rng = random.Random(SEED)
    sst2_train = read_tsv(source / "text" / "sst2" / "train.tsv", has_header=True)
    phrases = [row for row in sst2_train if len(row[0].split()) >= SST2_MIN_WORDS]
    write_tsv(HERE / "text" / "sst2" / "train.tsv", random.Random(SEED).sample(phrases, SST2_TRAIN_SIZE))
    rng.sample(sst2_train, 3000)  # the draw of the earlier 3,000-sentence subset: keeps the AG News draws below
    write_tsv(HERE / "text" / "sst2" / "validation.tsv", read_tsv(source / "text" / "sst2" / "test.tsv", True))
    agnews_sources = {"train": "dev.tsv", "validation": "test.tsv"}
    for split, per_class in AGNEWS_PER_CLASS.items():
        rows = read_tsv(source / "text" / "agnews" / agnews_sources[split], has_header=False)
        write_tsv(HERE / "text" / "agnews" / f"{split}.tsv", balanced_sample(rows, per_class, rng))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, required=True, help="folder with the full source data sets")
    args = parser.parse_args()
    copy_cifar10(args.source)
    copy_fsdd(args.source)
    copy_coco_mini(args.source)
    copy_text(args.source)


if __name__ == "__main__":
    main()
