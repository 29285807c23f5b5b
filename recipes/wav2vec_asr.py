"""Bottleneck adapters on a frozen Wav2Vec2 model for speech recognition with a CTC character head.

    python recipes/wav2vec_asr.py --preset demo   # bundled Free Spoken Digit clips ("zero" ... "nine"), demo-wav2vec2
    python recipes/wav2vec_asr.py --preset full   # facebook/wav2vec2-base + LibriSpeech clean train.100

Reports word and character error rates (greedy decoding) on the validation split; metrics.json also lists a few
decoded validation transcripts next to their references.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from datasets import Audio  # noqa: E402
from lightning import LightningDataModule  # noqa: E402

from mm_adapters.backbones import Backbone  # noqa: E402
from mm_adapters.data import CharVocabulary, CTCCollator, fsdd_csv, load_audio_csv, load_hub_or_local  # noqa: E402
from mm_adapters.lightning import CTCModule  # noqa: E402

PRESETS = {
    "demo": common.Preset(
        backbone="demo-wav2vec2", data="bundled:fsdd", max_epochs=15, batch_size=16, lr=1e-2, reduction_factor=4
    ),
    "full": common.Preset(
        backbone="facebook/wav2vec2-base", data="openslr/librispeech_asr", max_epochs=3, batch_size=16, lr=1e-3,
        reduction_factor=8, warmup_steps=500,
    ),
}  # fmt: skip
HUB_CONFIG, HUB_SPLITS = "clean", ("train.100", "validation")


def load_data(settings: common.Settings, backbone: Backbone) -> tuple[LightningDataModule, CharVocabulary]:
    """(path, transcript) CSVs of the bundled clips, or LibriSpeech (lower-cased transcripts)."""
    if settings.data == "bundled:fsdd":
        train, val = (load_audio_csv(fsdd_csv("asr", split)) for split in ("train", "val"))
        audio_column = "path"
    else:
        train, val = (
            load_hub_or_local(settings.data, split, HUB_CONFIG)
            .cast_column("audio", Audio(decode=False))
            .map(lambda row: {"transcript": row["text"].lower()})
            for split in HUB_SPLITS
        )
        audio_column = "audio"
    vocabulary = CharVocabulary.from_texts([*train["transcript"], *val["transcript"]])
    collate = CTCCollator(
        backbone.sample_rate, vocabulary, min_samples=backbone.min_samples, audio_column=audio_column
    )
    return common.datamodule(settings, train, val, collate), vocabulary


def main(argv: list[str] | None = None) -> dict:
    args = common.build_parser(__doc__, PRESETS).parse_args(argv)
    prepared = common.prepare(args, "wav2vec_asr", PRESETS, load_data, adapter_name="asr")
    datamodule, vocabulary = prepared.data
    settings = prepared.settings
    module = CTCModule(
        prepared.backbone, vocabulary.chars, lr=settings.lr, warmup_steps=settings.warmup_steps,
        prefix_cache=settings.prefix_cache,
    )  # fmt: skip

    def examples(output_dir: Path) -> dict:
        vocabulary.save(output_dir / "vocabulary.json")
        return {"examples": [{"reference": ref, "prediction": hyp} for ref, hyp in module.last_predictions]}

    return common.train_and_report(prepared, module, datamodule, after_validate=examples)


if __name__ == "__main__":
    main()
