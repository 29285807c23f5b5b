"""An example input for one traced forward, read from the model itself: its forward signature and, where the model
has one, its config (Hugging Face) or data config (timm); for a plain ``nn.Module``, its first input layer. A model
whose input none of these tells takes ``example_inputs=`` (a tensor, a tuple of positional arguments, a dict of
keyword arguments, or a callable ``run(model)``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

BATCH, TOKENS = 2, 8


class NoAutoSpec(ValueError):
    """The automatic spec found no block list that passes its checks (the message says what it found)."""


class NoExampleInput(NoAutoSpec):
    """No example input could be built or run (the message says what was tried and how to pass one)."""


def _given(example_inputs) -> Callable[[nn.Module], object]:
    if callable(example_inputs) and not isinstance(example_inputs, (torch.Tensor, nn.Module)):
        return example_inputs
    if isinstance(example_inputs, dict):
        return lambda m: m(**example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return lambda m: m(*example_inputs)
    if isinstance(example_inputs, torch.Tensor):
        return lambda m: m(example_inputs)
    raise TypeError(
        "example_inputs must be a tensor, a tuple of positional arguments, a dict of keyword arguments or a "
        f"callable run(model); got {type(example_inputs).__name__}."
    )


def _parameters(model: nn.Module) -> list[inspect.Parameter]:
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return []
    return [p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _sub(config, *names):
    for name in names:
        sub = getattr(config, name, None)
        if sub is not None and not isinstance(sub, (dict, str, int)):
            return sub
    return None


def _ids(config, generator, length: int = TOKENS) -> torch.Tensor:
    text = _sub(config, "text_config", "decoder") or config
    vocab = int(getattr(text, "vocab_size", None) or getattr(config, "vocab_size", None) or 100)
    return torch.randint(0, min(vocab, 100), (BATCH, length), generator=generator)


def _pixels(config, generator) -> torch.Tensor:
    vision = _sub(config, "vision_config", "backbone_config") or config
    size = getattr(vision, "image_size", None) or getattr(config, "image_size", None) or 64
    size = size if isinstance(size, int) else tuple(size)[-1]
    channels = int(getattr(vision, "num_channels", 3) or 3)
    return torch.randn(BATCH, channels, size, size, generator=generator)


def _features(config, generator) -> torch.Tensor:
    """Log-mel frames in the layout the config describes: Whisper (batch, mels, 2 x positions), Speech2Text
    (batch, frames, features x channels), Wav2Vec2-BERT / Seamless (batch, frames, projection input)."""
    audio = _sub(config, "audio_config", "encoder_config") or config
    if getattr(audio, "max_source_positions", None) and getattr(audio, "num_mel_bins", None):
        return torch.randn(BATCH, audio.num_mel_bins, 2 * audio.max_source_positions, generator=generator)
    if getattr(audio, "input_feat_per_channel", None):
        width = audio.input_feat_per_channel * int(getattr(audio, "input_channels", 1) or 1)
        return torch.randn(BATCH, 64, width, generator=generator)
    if getattr(audio, "feature_projection_input_dim", None):
        return torch.randn(BATCH, 64, audio.feature_projection_input_dim, generator=generator)
    return torch.randn(BATCH, int(getattr(audio, "num_mel_bins", 80) or 80), 64, generator=generator)


def _values(config, generator) -> torch.Tensor:
    """A waveform, or (spectrogram transformers: a config with ``max_length`` and ``num_mel_bins``) mel frames."""
    audio = _sub(config, "audio_config") or config
    if getattr(audio, "max_length", None) and getattr(audio, "num_mel_bins", None):
        return torch.randn(BATCH, audio.max_length, audio.num_mel_bins, generator=generator)
    return torch.randn(BATCH, 16_000, generator=generator)


_BUILDERS = {
    "input_ids": _ids,
    "decoder_input_ids": lambda config, generator: _ids(config, generator, 4),
    "attention_mask": lambda config, generator: torch.ones(BATCH, TOKENS, dtype=torch.long),
    "pixel_values": _pixels,
    "input_values": lambda config, generator: _values(config, generator),
    "input_features": _features,
}
_MODALITY_INPUTS = {
    "text_config": ("input_ids",),
    "vision_config": ("pixel_values",),
    "audio_config": ("input_features", "input_values"),
}


def _config_inputs(model: nn.Module, config, modalities: bool = True) -> dict[str, torch.Tensor]:
    """Every input the model's forward needs, by name: required parameters, the main input, one input per
    modality sub-config (dual encoders; not with ``modalities`` False) and decoder inputs (encoder-decoders)."""
    parameters = {p.name: p for p in _parameters(model)}
    wanted = [name for name, p in parameters.items() if p.default is p.empty]
    main = getattr(model, "main_input_name", None)
    wanted.append(main if main in parameters else "")
    for sub, names in _MODALITY_INPUTS.items() if modalities else ():
        if _sub(config, sub) is not None:
            wanted.append(next((n for n in names if n in parameters), ""))
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" in parameters:
        wanted.append("decoder_input_ids")
    wanted = list(dict.fromkeys(n for n in wanted if n))
    unknown = [name for name in wanted if name not in _BUILDERS]
    if unknown or not wanted:
        raise NoExampleInput(f"its forward needs {unknown or 'an input'} that mm_adapters cannot build")
    generator = torch.Generator().manual_seed(0)
    inputs = {name: _BUILDERS[name](config, generator) for name in wanted}
    if "input_ids" in inputs and "attention_mask" in parameters:
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    return inputs


def _timm_runs(model: nn.Module) -> list[Callable[[nn.Module], object]]:
    channels, *size = model.pretrained_cfg["input_size"]
    runs = []
    for sizes in ([64, 64], size):  # 64 px where the model takes any size (SAM2's Hiera would trace at 1024)
        images = torch.randn(BATCH, channels, *sizes, generator=torch.Generator().manual_seed(0))

        def run(m, images=images):
            return m.forward_features(images) if hasattr(m, "forward_features") else m(images)

        runs.append(run)
    return runs


def _first_layer_runs(model: nn.Module) -> list[Callable[[nn.Module], object]]:
    """A plain ``nn.Module`` with one required input: shaped for its first input layer (an embedding takes token
    ids; a Conv2d images at the model's ``image_size`` / ``img_size`` or a few sides; a Conv1d waveforms; a Linear
    feature vectors)."""
    required = [p for p in _parameters(model) if p.default is p.empty]
    if len(required) != 1:
        return []
    generator = torch.Generator().manual_seed(0)
    first = next(
        (m for m in model.modules() if isinstance(m, (nn.Embedding, nn.Conv2d, nn.Conv1d, nn.Linear))), None
    )
    candidates: list[torch.Tensor] = []
    if isinstance(first, nn.Embedding):
        candidates.append(
            torch.randint(0, min(first.num_embeddings, 100), (BATCH, TOKENS), generator=generator)
        )
    elif isinstance(first, nn.Conv2d):
        sides = [getattr(model, key, None) for key in ("image_size", "img_size")]
        sides = [s if isinstance(s, int) else s[-1] for s in sides if s] + [32, 64, 224]
        candidates += [torch.randn(BATCH, first.in_channels, s, s, generator=generator) for s in sides]
    elif isinstance(first, nn.Conv1d):
        waveform = torch.randn(BATCH, first.in_channels, 16_000, generator=generator)
        candidates += [waveform.squeeze(1), waveform] if first.in_channels == 1 else [waveform]
    elif isinstance(first, nn.Linear):
        candidates.append(torch.randn(BATCH, TOKENS, first.in_features, generator=generator))
    return [lambda m, x=x: m(x) for x in candidates]


def _first_that_runs(
    model: nn.Module, runs: list[Callable[[nn.Module], object]]
) -> Callable[[nn.Module], object]:
    failures = []
    for run in runs:
        try:
            with torch.no_grad():
                run(model)
            return run
        except Exception as error:  # noqa: BLE001  (the model's own error, reported below)
            failures.append(f"{type(error).__name__}: {str(error)[:200]}")
    raise NoExampleInput(f"the inputs built for it fail ({failures[-1]})" if failures else "")


def example_run(model: nn.Module, example_inputs=None) -> Callable[[nn.Module], object]:
    """``run(model)`` for one traced forward: on ``example_inputs`` when given, else on a tiny batch built from the
    model's forward signature and config (Hugging Face), data config (timm) or first input layer."""
    if example_inputs is not None:
        return _given(example_inputs)
    config = getattr(model, "config", None)
    try:
        if config is not None and hasattr(config, "to_dict"):
            # every modality; else the main input alone (a vision-language model whose image tokens the random
            # ids do not hold: its language tower is traced, and the tower that did not run is named in a note)
            batches = [_config_inputs(model, config), _config_inputs(model, config, modalities=False)]
            unique = [b for i, b in enumerate(batches) if all(set(b) != set(o) for o in batches[:i])]
            return _first_that_runs(model, [lambda m, batch=batch: m(**batch) for batch in unique])
        if isinstance(getattr(model, "pretrained_cfg", None), dict) and "input_size" in model.pretrained_cfg:
            return _first_that_runs(model, _timm_runs(model))
        return _first_that_runs(model, _first_layer_runs(model))
    except NoExampleInput as error:
        reason = f" ({error})" if str(error) else ""
        raise NoExampleInput(
            f"The automatic spec needs one forward on a tiny input, and mm_adapters cannot tell "
            f"{type(model).__name__}'s input{reason}: pass one as example_inputs= to add_adapter / describe (a "
            "tensor, a tuple of positional arguments or a dict of keyword arguments, e.g. "
            "example_inputs={'input_ids': ids, 'pixel_values': images})."
        ) from None
