"""Bottleneck adapters on a frozen Wav2Vec2 model for accent classification of spoken English.

    python recipes/wav2vec_accent.py --preset demo   # bundled Free Spoken Digit clips, 4 accents, demo-wav2vec2
    python recipes/wav2vec_accent.py --preset full   # facebook/wav2vec2-base + westbrook/English_Accent_DataSet

The demo task is speaker-dependent (each accent has one or two speakers, present in both splits): it shows the
pipeline, not accent recognition in the wild. Outputs as for every recipe, plus confusion_matrix.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import classify  # noqa: E402
import common  # noqa: E402
from datasets import Audio  # noqa: E402
from lightning import LightningDataModule  # noqa: E402

from mm_adapters.backbones import Backbone  # noqa: E402
from mm_adapters.data import (  # noqa: E402
    AudioClassificationCollator,
    fsdd_csv,
    label_names,
    load_audio_csv,
    load_hub_or_local,
    to_class_labels,
)

PRESETS = {
    "demo": common.Preset(
        backbone="demo-wav2vec2", data="bundled:fsdd", max_epochs=12, batch_size=16, lr=1e-2, reduction_factor=4
    ),
    "full": common.Preset(
        backbone="facebook/wav2vec2-base", data="westbrook/English_Accent_DataSet", max_epochs=3, batch_size=16,
        lr=1e-3, warmup_steps=200,
    ),
}  # fmt: skip
HUB_SPLITS, HUB_AUDIO, HUB_LABEL = ("train", "test"), "audio", "accent"


def load_data(settings: common.Settings, backbone: Backbone) -> tuple[LightningDataModule, list[str]]:
    """(path, accent) CSVs of the bundled clips, or a hub data set with ``audio`` and ``accent`` columns."""
    if settings.data == "bundled:fsdd":
        train, val = (load_audio_csv(fsdd_csv("accent", split)) for split in ("train", "val"))
        audio_column, label_column = "path", "label"
    else:
        train, val = (
            to_class_labels(load_hub_or_local(settings.data, split), HUB_LABEL).cast_column(
                HUB_AUDIO, Audio(decode=False)
            )
            for split in HUB_SPLITS
        )
        audio_column, label_column = HUB_AUDIO, HUB_LABEL
    names = label_names(train, label_column)
    collate = AudioClassificationCollator(
        backbone.sample_rate,
        min_samples=backbone.min_samples,
        audio_column=audio_column,
        label_column=label_column,
        num_classes=len(names),
    )
    return common.datamodule(settings, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return classify.run(__doc__, "wav2vec_accent", PRESETS, load_data, "accent", argv)


if __name__ == "__main__":
    main()
