"""Example inputs for a Hugging Face model the sweep built, from its ``forward`` signature and its config: token ids,
pixels (images or video frames), waveforms, log-mel features, decoder inputs; every required input filled or the
model is reported as not run, naming the input. Several layouts are tried (the first that runs is kept)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import torch

BATCH, TOKENS, DECODER_TOKENS = 2, 8, 8


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _sub(config, *names):
    for name in names:
        sub = getattr(config, name, None)
        if sub is not None and not isinstance(sub, (int, float, str, dict, list)):
            return sub
    return config


def _ids(config, length: int) -> torch.Tensor:
    vocab = getattr(config, "vocab_size", None)
    vocab = int(vocab) if isinstance(vocab, int) and vocab > 6 else 100
    ids = torch.randint(5, min(vocab, 100), (BATCH, length), generator=_generator())
    eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, int) and 0 <= eos < vocab:  # BART-like classifiers pool at the end-of-sequence token
        ids[:, -1] = eos
    return ids


def _side(vision) -> int:
    size = getattr(vision, "image_size", 32)
    size = size if isinstance(size, int) else (size[0] if isinstance(size, (list, tuple)) else 32)
    return int(size)


def _pixels(config, video: bool) -> torch.Tensor:
    vision = _sub(config, "vision_config", "backbone_config")
    side, channels = _side(vision), int(getattr(vision, "num_channels", 3) or 3)
    if video:
        frames = int(getattr(vision, "num_frames", 2) or 2)
        return torch.randn(BATCH, frames, channels, side, side, generator=_generator())
    return torch.randn(BATCH, channels, side, side, generator=_generator())


def _features(config, channels_first: bool) -> torch.Tensor:
    audio = _sub(config, "audio_config", "encoder_config")
    bins = int(getattr(audio, "num_mel_bins", 0) or getattr(audio, "feature_size", 0) or 80)
    per_channel = getattr(audio, "input_feat_per_channel", None)
    if per_channel:  # Speech2Text: frames x (features per channel x channels)
        bins = int(per_channel) * int(getattr(audio, "input_channels", 1) or 1)
    positions = getattr(audio, "max_source_positions", None)
    frames = 2 * int(positions) if isinstance(positions, int) and positions <= 64 else 32
    shape = (BATCH, bins, frames) if channels_first else (BATCH, frames, bins)
    return torch.randn(*shape, generator=_generator())


def _waveform(config) -> torch.Tensor:
    audio = _sub(config, "audio_config")
    if hasattr(audio, "num_mel_bins") and hasattr(audio, "max_length"):  # spectrogram transformer
        return torch.randn(BATCH, audio.max_length, audio.num_mel_bins, generator=_generator())
    return torch.randn(BATCH, 1600, generator=_generator())


def _parameters(model) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(model.forward).parameters)


def candidate_batches(model) -> Iterator[dict[str, torch.Tensor]]:
    """Input dicts to try, most complete first; each fills every required input it can."""
    config, accepted = model.config, _parameters(model)
    for video in (bool(getattr(_sub(config, "vision_config"), "num_frames", None)), False):
        for channels_first in (True, False):
            batch: dict[str, torch.Tensor] = {}
            if "input_ids" in accepted:
                batch["input_ids"] = _ids(_sub(config, "text_config"), TOKENS)
                if "attention_mask" in accepted:
                    batch["attention_mask"] = torch.ones(BATCH, TOKENS, dtype=torch.long)
            if "pixel_values" in accepted:
                batch.update(_vision_inputs(config, accepted, video))
            if "input_values" in accepted:
                batch["input_values"] = _waveform(config)
            if "input_features" in accepted:
                batch["input_features"] = _features(config, channels_first)
            if "decoder_input_ids" in accepted:
                batch["decoder_input_ids"] = _ids(
                    _sub(config, "decoder_config", "text_config"), DECODER_TOKENS
                )
            yield batch
    if "input_ids" in accepted:  # vision-language models also run on text alone
        yield {"input_ids": _ids(_sub(config, "text_config"), TOKENS)}


def _vision_inputs(config, accepted, video: bool) -> dict[str, torch.Tensor]:
    vision = _sub(config, "vision_config")
    if "spatial_shapes" in accepted and hasattr(vision, "num_patches"):  # SigLIP2: patchified pixels
        patches, side = vision.num_patches, int(vision.num_patches**0.5)
        depth = vision.num_channels * vision.patch_size**2
        return {
            "pixel_values": torch.randn(BATCH, patches, depth, generator=_generator()),
            "pixel_attention_mask": torch.ones(BATCH, patches, dtype=torch.long),
            "spatial_shapes": torch.tensor([[side, side]] * BATCH),
        }
    inputs = {"pixel_values": _pixels(config, video)}
    if "noise" in accepted and hasattr(
        vision, "patch_size"
    ):  # ViT-MAE shuffles patches by this noise: fix it
        patches = (_side(vision) // vision.patch_size) ** 2
        inputs["noise"] = torch.rand(BATCH, patches, generator=_generator())
    return inputs


def unfilled(model, batch: dict) -> list[str]:
    """Required ``forward`` inputs (no default) that ``batch`` leaves out."""
    return [
        name
        for name, p in _parameters(model).items()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in batch
    ]


def example_batch(model) -> dict[str, torch.Tensor]:
    """The first candidate batch the model runs on (run once here, without gradients)."""
    errors = []
    for batch in candidate_batches(model):
        missing = unfilled(model, batch)
        if missing:
            errors.append(f"no example for the required input(s) {', '.join(missing)}")
            continue
        try:
            with torch.no_grad():
                all_floats(model(**batch))
            return batch
        except Exception as error:  # noqa: BLE001  (try the next layout)
            errors.append(f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}")
    if not errors:
        errors.append("the model takes none of input_ids, pixel_values, input_values, input_features")
    raise ValueError(f"no example input runs {type(model).__name__}: " + " | ".join(dict.fromkeys(errors)))


def float_tensors(output) -> list[torch.Tensor]:
    """Every floating-point tensor of a model output (tensors, ``ModelOutput``s, dicts, lists and tuples), in order."""
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if hasattr(output, "to_tuple"):
        output = output.to_tuple()
    if isinstance(output, dict):
        output = list(output.values())
    if not isinstance(output, (list, tuple)):
        return []
    return [tensor for value in output for tensor in float_tensors(value)]


def all_floats(output) -> torch.Tensor:
    """Every floating-point tensor of a model output, flattened per example and concatenated (so every tower and
    every head the output carries is compared)."""
    found = [t.reshape(BATCH, -1) for t in float_tensors(output) if t.dim() > 0 and t.shape[0] == BATCH]
    if not found:
        raise TypeError(
            f"no floating-point tensor with a batch dimension in the output {type(output).__name__}"
        )
    return torch.cat(found, dim=1)
