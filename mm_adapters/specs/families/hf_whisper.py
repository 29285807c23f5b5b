"""OpenAI Whisper (transformers): the encoder as tower "audio", the decoder as tower "text" with cross-attention.

Pre-LN blocks; attention returns (hidden, weights); the FFN is fc1 -> act -> fc2 with no wrapping module, so fc2's
output is the FFN output and fc1's input (after final_layer_norm) its input. The decoder adds cross-attention
(``encoder_attn``), adapted as site "cross_attn". In the encoder-decoder the decoder reads the encoder's output with
its own batch, so ``Parallel`` may branch the decoder (which gets the encoder states repeated as a batch argument)
but not the encoder. The task wrapper (``mm_adapters.backbones.whisper``) runs the encoder on a short window.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..base import BackboneSpec, SiteSpec, TowerSpec
from ..family import TINY, Example, Family, ModelSize, seeded
from ..registry import register_family

_BLOCK = dict(
    attn=SiteSpec(output="self_attn", norm="self_attn_layer_norm"),
    ffn=SiteSpec(output="fc2", input="fc1", norm="final_layer_norm"),
    hidden_size="fc2.out_features",
    norm_position="pre",
)
_ENCODER = TowerSpec(layers="encoder.layers|layers", **_BLOCK)
_DECODER = TowerSpec(
    layers="decoder.layers",
    cross_attn=SiteSpec(output="encoder_attn", norm="encoder_attn_layer_norm"),
    batch_args=("attention_mask", "encoder_hidden_states", "encoder_attention_mask"),
    **_BLOCK,
)
MEL_BINS, POSITIONS = 8, 10
"""The tiny examples: 8 mel bins and 10 encoder positions (20 mel frames, a 0.2 s window)."""


def whisper_config(size: ModelSize = TINY, **overrides):
    """A small random Whisper config (vocabulary of 100 unless overridden, no dropout)."""
    from transformers import WhisperConfig

    settings = dict(
        vocab_size=100, num_mel_bins=MEL_BINS, d_model=size.hidden, encoder_layers=size.layers,
        decoder_layers=size.layers, encoder_attention_heads=size.heads, decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.ffn, decoder_ffn_dim=size.ffn, max_source_positions=POSITIONS, max_target_positions=16,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0,
    )  # fmt: skip
    return WhisperConfig(**{**settings, **overrides})


def _features(seed: int = 0) -> dict[str, torch.Tensor]:
    return {"input_features": torch.randn(2, MEL_BINS, 2 * POSITIONS, generator=seeded(seed))}


def _seq2seq_example() -> Example:
    def build(size: ModelSize = TINY, tokenizer=None):
        from transformers import WhisperModel

        return WhisperModel(whisper_config(size)).eval()

    def inputs(seed: int = 0) -> dict[str, torch.Tensor]:
        ids = torch.randint(3, 100, (2, 5), generator=seeded(seed + 1))
        return {**_features(seed), "decoder_input_ids": ids}

    def run(model: nn.Module, batch: dict) -> torch.Tensor:  # the decoder's output depends on both towers
        return model(**batch).last_hidden_state

    return Example(build, inputs, run)


def _encoder_example() -> Example:
    def build(size: ModelSize = TINY, tokenizer=None):
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        return WhisperEncoder(whisper_config(size)).eval()

    return Example(build, _features, lambda model, batch: model(**batch).last_hidden_state)


register_family(
    Family(
        spec=BackboneSpec(
            family="hf_whisper",
            class_names=("WhisperModel",),  # WhisperForConditionalGeneration through its base model (.model)
            towers={"audio": dataclasses.replace(_ENCODER, parallel_branch=False), "text": _DECODER},
        ),
        wrapper="hf_whisper",
        examples={"hf_whisper": _seq2seq_example()},
    )
)

# The encoder alone (``WhisperEncoder``, ``WhisperForAudioClassification``): the audio tower only.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_whisper_encoder",
            class_names=("WhisperEncoder", "WhisperForAudioClassification"),
            towers={"audio": _ENCODER},
        ),
        wrapper="hf_whisper",
        examples={"hf_whisper_encoder": _encoder_example()},
    )
)
