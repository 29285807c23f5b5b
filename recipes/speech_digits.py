"""Bottleneck adapters on the real, frozen Whisper tiny.en encoder for spoken-digit classification, validated on
speakers never heard in training.

    python recipes/speech_digits.py --preset demo                  # whisper-tiny.en (offline), FSDD by speaker
    python recipes/speech_digits.py --preset demo --method probe   # the same, head only (the baseline; also full, lora)
    python recipes/speech_digits.py --data my_clips/               # your clips + train/validation tables (file,label)

The bundled split holds out two of the six FSDD speakers (lucas, theo: 160 clips) and trains on the other four
(320 clips), so the score says what the pretrained encoder is worth for new voices. The encoder runs on a 3 s
window (README, "Whisper"). Outputs as for every recipe, plus confusion_matrix.png.
Presets: configs/speech_digits/{demo,full}.yaml (the same: the backbone is real and the data bundled).
"""

from __future__ import annotations

from dataclasses import dataclass

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
class Config(runner.ClassificationConfig, runner.AudioColumns):
    """The common options and the columns of a local table (see configs/speech_digits/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, list[str]]:
    """The speaker-split (path, digit) CSVs, or a local folder of clips and tables (the local-data contract)."""
    if runner.is_local(config.data):
        local = runner.load_local(
            config, "audio", sample_rate=backbone.sample_rate, min_samples=backbone.min_samples
        )
        train, val, names = local.train, local.validation, local.class_names
    elif config.data == BUNDLED:
        train = load_audio_csv(fsdd_csv("digit_speaker", "train"))
        names = label_names(train)
        val = load_audio_csv(fsdd_csv("digit_speaker", "val"), label_names=names)
    else:
        raise ValueError(f"--data is {config.data!r}: pass {BUNDLED} or a local folder of clips and tables.")
    collate = AudioClassificationCollator(
        backbone.sample_rate, min_samples=backbone.min_samples, num_classes=len(names),
        normalize=backbone.normalize_audio,
    )  # fmt: skip
    return runner.datamodule(config, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return runner.train_classifier(Config, load_data, argv, adapter="digits")


if __name__ == "__main__":
    main()
