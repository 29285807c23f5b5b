"""Bottleneck adapters on a frozen Wav2Vec2 model for accent classification of spoken English.

    python recipes/wav2vec_accent.py --preset demo   # bundled Free Spoken Digit clips, 4 accents, demo-wav2vec2
    python recipes/wav2vec_accent.py --preset full   # facebook/wav2vec2-base + westbrook/English_Accent_DataSet
    python recipes/wav2vec_accent.py --backbone whisper-tiny.en   # the real Whisper tiny.en encoder, offline
    python recipes/wav2vec_accent.py --data my_calls/ --output-dir runs/calls   # clips + train/validation.csv

The demo task is speaker-dependent (each accent has one or two speakers, present in both splits): FSDD "accent" is
speaker identity, which even log-mel statistics separate perfectly, so it shows the pipeline, not accent recognition
in the wild nor what a pretrained backbone is worth (recipes/speech_digits.py does, on held-out speakers). ``--data FOLDER`` trains on your own clips: train.csv + validation.csv of file,label
(paths relative to the table; any sample rate, resampled). Outputs as for every recipe, plus confusion_matrix.png.
Presets: configs/wav2vec_accent/{demo,full}.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasets import Audio

from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.data import (
    AdapterDataModule,
    AudioClassificationCollator,
    fsdd_csv,
    label_names,
    load_audio_csv,
    load_hub_or_local,
    shared_class_labels,
)

HUB_SPLITS, HUB_AUDIO, HUB_LABEL = ("train", "test"), "audio", "accent"


@dataclass
class Config(runner.ClassificationConfig, runner.AudioColumns):
    """The common options and the columns of a local table (see configs/wav2vec_accent/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, list[str]]:
    """A local folder of clips and tables (the local-data contract), the bundled clips' (path, accent) CSVs, or a
    hub data set with ``audio`` and ``accent`` columns."""
    if runner.is_local(config.data):
        local = runner.load_local(
            config, "audio", sample_rate=backbone.sample_rate, min_samples=backbone.min_samples
        )
        train, val = local.train, local.validation
        audio_column, label_column = "path", "label"
    elif config.data == "bundled:fsdd":
        train, val = (load_audio_csv(fsdd_csv("accent", split)) for split in ("train", "val"))
        audio_column, label_column = "path", "label"
    else:
        splits = {split: load_hub_or_local(config.data, split) for split in HUB_SPLITS}
        shared = shared_class_labels(splits, HUB_LABEL)  # one id per accent in both splits
        train, val = (split.cast_column(HUB_AUDIO, Audio(decode=False)) for split in shared.values())
        audio_column, label_column = HUB_AUDIO, HUB_LABEL
    names = label_names(train, label_column)
    collate = AudioClassificationCollator(
        backbone.sample_rate,
        min_samples=backbone.min_samples,
        audio_column=audio_column,
        label_column=label_column,
        num_classes=len(names),
        normalize=backbone.normalize_audio,
    )
    return runner.datamodule(config, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return runner.train_classifier(Config, load_data, argv, adapter="accent")


if __name__ == "__main__":
    main()
