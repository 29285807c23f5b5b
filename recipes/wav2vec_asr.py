"""Bottleneck adapters on a frozen Wav2Vec2 model for speech recognition with a CTC character head.

    python recipes/wav2vec_asr.py --preset demo   # bundled Free Spoken Digit clips ("zero" ... "nine"), demo-wav2vec2
    python recipes/wav2vec_asr.py --preset full   # facebook/wav2vec2-base + LibriSpeech clean train.100
    python recipes/wav2vec_asr.py --backbone whisper-tiny.en --data bundled:fsdd-speakers  # real Whisper encoder,
                                                  # CTC on speakers never heard in training
    python recipes/wav2vec_asr.py --data my_dictation/ --output-dir runs/dictation   # clips + file,transcript CSVs

Reports word and character error rates (greedy decoding) on the validation split; metrics.json also lists a few
decoded validation transcripts next to their references, and vocabulary.json holds the CTC characters (every
character of the transcripts, as written). ``--data FOLDER``: train.csv + validation.csv of file,transcript.
Presets: configs/wav2vec_asr/{demo,full}.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from datasets import Audio

from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.data import (
    AdapterDataModule,
    CharVocabulary,
    CTCCollator,
    fsdd_csv,
    load_audio_csv,
    load_hub_or_local,
)
from mm_adapters.lightning import CTCModule

HUB_CONFIG, HUB_SPLITS = "clean", ("train.100", "validation")
BUNDLED = {"bundled:fsdd": "asr", "bundled:fsdd-speakers": "asr_speaker"}


@dataclass
class Config(runner.RecipeConfig, runner.TranscriptColumns):
    """The common options and the columns of a local table (see configs/wav2vec_asr/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, CharVocabulary]:
    """A local folder of clips and (file, transcript) tables (the local-data contract), the bundled clips' CSVs
    (``bundled:fsdd-speakers``: split by speaker), or LibriSpeech (lower-cased transcripts)."""
    if runner.is_local(config.data):
        local = runner.load_local(
            config, "asr", sample_rate=backbone.sample_rate, min_samples=backbone.min_samples
        )
        train, val = local.train, local.validation
        audio_column = "path"
    elif config.data in BUNDLED:
        task = BUNDLED[config.data]
        train, val = (load_audio_csv(fsdd_csv(task, split)) for split in ("train", "val"))
        audio_column = "path"
    else:
        train, val = (
            load_hub_or_local(config.data, split, HUB_CONFIG)
            .cast_column("audio", Audio(decode=False))
            .map(lambda row: {"transcript": row["text"].lower()})
            for split in HUB_SPLITS
        )
        audio_column = "audio"
    vocabulary = CharVocabulary.from_texts([*train["transcript"], *val["transcript"]])
    collate = CTCCollator(
        backbone.sample_rate, vocabulary, min_samples=backbone.min_samples, audio_column=audio_column,
        normalize=backbone.normalize_audio,
    )  # fmt: skip
    return runner.datamodule(config, train, val, collate), vocabulary


def main(argv: list[str] | None = None) -> dict:
    run = runner.start(Config, load_data, argv, adapter="asr")
    datamodule, vocabulary = run.data
    config = run.config
    module = CTCModule(
        run.backbone, vocabulary.chars, lr=config.lr, warmup_steps=config.warmup_steps,
        prefix_cache=config.prefix_cache,
    )  # fmt: skip
    trainer = run.trainer()
    run.fit(trainer, module, datamodule)
    report = run.evaluate(trainer, module, datamodule)
    if trainer.is_global_zero:
        vocabulary.save(Path(config.output_dir) / "vocabulary.json")
        report["examples"] = [{"reference": ref, "prediction": hyp} for ref, hyp in module.last_predictions]
    return run.write(report)


if __name__ == "__main__":
    main()
