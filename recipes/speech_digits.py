"""Bottleneck adapters on the real, frozen Whisper tiny.en encoder for spoken-digit classification, validated on
speakers never heard in training.

    python recipes/speech_digits.py --preset demo                  # whisper-tiny.en (offline), FSDD by speaker
    python recipes/speech_digits.py --preset demo --method probe  # the same, head only (also full, lora)
    python recipes/speech_digits.py --data my_clips/               # your own train.csv / val.csv (path,label)

The bundled split holds out two of the six FSDD speakers (lucas, theo: 160 clips) and trains on the other four
(320 clips), so the score says what the pretrained encoder is worth for new voices. The encoder runs on a 3 s
window (README, "Whisper"). Outputs as for every recipe, plus confusion_matrix.png.
Presets: configs/speech_digits/{demo,full}.yaml (the same: the backbone is real and the data bundled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.data import (
    AdapterDataModule,
    AudioClassificationCollator,
    fsdd_csv,
    label_names,
    load_audio_csv,
)

BUNDLED = "bundled:fsdd-speakers"


@dataclass
class Config(runner.ClassificationConfig):
    """The common options (see configs/speech_digits/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, list[str]]:
    """The speaker-split (path, digit) CSVs, or ``train.csv`` and ``val.csv`` (path,label) in the ``--data`` folder."""
    if config.data == BUNDLED:
        files = [fsdd_csv("digit_speaker", split) for split in ("train", "val")]
    else:
        files = [Path(config.data) / f"{split}.csv" for split in ("train", "val")]
    train = load_audio_csv(files[0])
    names = label_names(train)
    val = load_audio_csv(files[1], label_names=names)
    collate = AudioClassificationCollator(
        backbone.sample_rate, min_samples=backbone.min_samples, num_classes=len(names),
        normalize=backbone.normalize_audio,
    )  # fmt: skip
    return runner.datamodule(config, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return runner.train_classifier(Config, load_data, argv, adapter="digits")


if __name__ == "__main__":
    main()
