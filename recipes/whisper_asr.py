"""Bottleneck adapters in the real Whisper tiny.en for speech recognition with its own decoder, on speakers never
heard in training: zero-shot (plain, and with a prompt naming the digits) against adapter-tuned word accuracy/WER.

    python recipes/whisper_asr.py --preset demo                      # decoder adapters; FSDD split by speaker
    python recipes/whisper_asr.py --preset demo --towers audio,text  # adapters in the encoder and the decoder
    python recipes/whisper_asr.py --data my_clips/                   # clips + train/validation tables (file,transcript)

The encoder keeps Whisper's 30 s window here (its decoder was trained on it), so a clip costs ~10x what it costs
on the 3 s window of the classification and CTC recipes; the demo preset trains on every 4th clip (80) and
validates on every 4th held-out clip (40). Presets: configs/whisper_asr/{demo,full}.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

import mm_adapters
from mm_adapters import AdapterConfig, runner, set_active_adapters
from mm_adapters.backbones import Backbone, load_whisper_seq2seq
from mm_adapters.data import AdapterDataModule, TranscriptCollator, fsdd_csv, load_audio_csv
from mm_adapters.lightning import SpeechSeq2SeqModule
from mm_adapters.runner import option, parse_layers

BUNDLED = "bundled:fsdd-speakers"
DIGITS_PROMPT = "zero one two three four five six seven eight nine"
ADAPTER = "asr"


@dataclass
class Config(runner.RecipeConfig, runner.TranscriptColumns):
    """The common options plus where the adapters go and how much of the data a run uses."""

    towers: str = option("text", "Towers with adapters: text (decoder), audio (encoder) or audio,text.")
    cross_attention: bool = option(False, "Also adapt the decoder's cross-attention (site cross_attn).")
    train_every: int = option(1, "Train on every n-th clip (1: all).")
    val_every: int = option(1, "Validate on every n-th clip (1: all).")
    prompt: str = option(DIGITS_PROMPT, "Decoder prompt for the second zero-shot score ('' skips it).")
    max_new_tokens: int = option(8, "Most tokens decoded per clip.")


def load_data(config: Config, backbone: Backbone) -> AdapterDataModule:
    """The speaker-split (path, transcript) CSVs, or a local folder of clips and tables (the local-data contract)."""
    if runner.is_local(config.data):
        local = runner.load_local(config, "asr", sample_rate=backbone.sample_rate)
        train, val = local.train, local.validation
    elif config.data == BUNDLED:
        files = [fsdd_csv("asr_speaker", split) for split in ("train", "val")]
        train, val = (load_audio_csv(path, transcript_column="transcript") for path in files)
    else:
        raise ValueError(f"--data is {config.data!r}: pass {BUNDLED} or a local folder of clips and tables.")
    train, val = _every(train, config.train_every), _every(val, config.val_every)
    collate = TranscriptCollator(backbone.sample_rate, normalize=backbone.normalize_audio)
    return runner.datamodule(config, train, val, collate)


def adapter_config(config: Config) -> AdapterConfig:
    towers = tuple(t.strip() for t in config.towers.split(",") if t.strip())
    preset = AdapterConfig.preset(config.placement)
    sites = (*preset.sites, "cross_attn") if config.cross_attention else preset.sites
    return AdapterConfig.preset(
        config.placement, reduction_factor=config.reduction_factor, layers=parse_layers(config.layers),
        towers=towers, sites=sites,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    run = runner.start(Config, load_data, argv, adapter=None)
    config, datamodule = run.config, run.data
    if config.method == "probe":
        raise SystemExit(
            "error: whisper_asr has no head of its own to probe (the decoder writes the text); its baseline without "
            "training is in the report as zero_shot_metrics. Use --method adapter, full or lora."
        )
    backbone = load_whisper_seq2seq(config.backbone)  # the whole model, on its own 30 s window
    run.backbone = backbone
    run.adapter_name = runner.prepare_method(config, backbone.model, ADAPTER, adapter_config(config))
    module = SpeechSeq2SeqModule(
        backbone, lr=config.lr, warmup_steps=config.warmup_steps, max_new_tokens=config.max_new_tokens
    )
    trainer = run.trainer()
    zero_shot = _zero_shot(trainer, module, datamodule, backbone, config.prompt)
    run.fit(trainer, module, datamodule)
    report = run.evaluate(trainer, module, datamodule)
    if trainer.is_global_zero:
        report.update(zero_shot)
        report["towers"], report["cross_attention"] = config.towers, config.cross_attention
        report["examples"] = [{"reference": ref, "prediction": hyp} for ref, hyp in module.last_predictions]
    return run.write(report)


def _zero_shot(trainer, module, datamodule, backbone, prompt: str) -> dict:
    """Validation scores of the plain model (adapters off), greedy, without and with ``prompt``."""
    adapted = bool(mm_adapters.active_adapters(backbone.model))
    if adapted:
        set_active_adapters(backbone.model, None)
    scores = {"zero_shot_metrics": _validate(trainer, module, datamodule)}
    if prompt:
        module.prompt = prompt
        scores["zero_shot_prompted_metrics"] = _validate(trainer, module, datamodule)
        scores["zero_shot_prompt"] = prompt
        module.prompt = None
    if adapted:
        set_active_adapters(backbone.model, ADAPTER)
    return scores


def _validate(trainer, module, datamodule) -> dict:
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return {key: round(float(value), 6) for key, value in metrics.items()}


def _every(dataset, step: int):
    if step < 1:
        raise ValueError(f"train_every / val_every must be at least 1, got {step}.")
    return dataset if step == 1 else dataset.select(range(0, len(dataset), step))


if __name__ == "__main__":
    main()
