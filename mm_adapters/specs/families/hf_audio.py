"""Hugging Face speech encoders (waveform in, frames out) and the audio spectrogram transformer."""

from __future__ import annotations

import torch

from ..base import BackboneSpec, SiteSpec, TowerSpec
from ..family import TINY, Demo, Example, Family, ModelSize, audio_batch, last_hidden_state, seeded
from ..registry import register_family


def _audio_example(model_class: str, config_class: str, **extra) -> Example:
    def build(size: ModelSize = TINY, tokenizer=None):
        import transformers

        wide = size.hidden >= 64  # demo size: the feature encoder of the demo wav2vec2
        config = getattr(transformers, config_class)(
            hidden_size=size.hidden, num_hidden_layers=size.layers, num_attention_heads=size.heads,
            intermediate_size=size.ffn, conv_dim=(64,) * 4 if wide else (16, 16),
            conv_stride=(5, 4, 4, 4) if wide else (5, 4), conv_kernel=(10, 8, 4, 4) if wide else (10, 4),
            num_conv_pos_embeddings=16 if wide else 8, num_conv_pos_embedding_groups=4, hidden_dropout=0.0,
            attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0, layerdrop=0.0,
            mask_time_prob=0.0, vocab_size=12, **({"feat_extract_norm": "layer"} if wide else {}), **extra,
        )  # fmt: skip
        return getattr(transformers, model_class)(config).eval()

    return Example(build, audio_batch, last_hidden_state)


# Wav2Vec2, HuBERT, WavLM, SEW, UniSpeech(-SAT): attention returns a tuple; the FFN is one module.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_wav2vec2",
            class_names=("Wav2Vec2Model", "HubertModel", "WavLMModel", "Data2VecAudioModel"),
            model_types=(
                "wav2vec2",
                "hubert",
                "wavlm",
                "data2vec-audio",
                "sew",
                "unispeech",
                "unispeech-sat",
            ),
            towers={
                "audio": TowerSpec(
                    layers="encoder.layers",
                    batch_args=("attention_mask", "position_bias"),
                    attn=SiteSpec(output="attention", norm="layer_norm"),
                    ffn=SiteSpec(output="feed_forward", norm="final_layer_norm"),
                    hidden_size="feed_forward.output_dense.out_features",
                    # the "stable layer norm" blocks (large checkpoints) are pre-LN, the base ones post-LN
                    norm_position=lambda block: (
                        "pre" if type(block).__name__.endswith("StableLayerNorm") else "post"
                    ),
                )
            },
        ),
        wrapper="hf_wav2vec2",
        examples={
            "hf_wav2vec2": _audio_example("Wav2Vec2Model", "Wav2Vec2Config"),
            "hf_hubert": _audio_example("HubertModel", "HubertConfig"),
            "hf_wavlm": _audio_example("WavLMModel", "WavLMConfig"),
        },
        demos=(Demo("demo-wav2vec2", "hf_wav2vec2"),),
    )
)

# Conformer blocks: two half-step FFNs around attention and a convolution module; adapters go on attention and
# the second FFN (the one that ends the block, as in the Houlsby placement).
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_wav2vec2_conformer",
            class_names=("Wav2Vec2ConformerModel",),
            model_types=("wav2vec2-conformer",),
            towers={
                "audio": TowerSpec(
                    layers="encoder.layers",
                    batch_args=("attention_mask",),
                    attn=SiteSpec(output="self_attn", norm="self_attn_layer_norm"),
                    ffn=SiteSpec(output="ffn2", norm="ffn2_layer_norm"),
                    norm_position="pre",
                )
            },
        ),
        wrapper="hf_wav2vec2",
        examples={
            "hf_wav2vec2_conformer": _audio_example("Wav2Vec2ConformerModel", "Wav2Vec2ConformerConfig")
        },
    )
)

# SEW-D: DeBERTa-style blocks inside a speech encoder.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_sew_d",
            class_names=("SEWDModel",),
            model_types=("sew-d",),
            towers={
                "audio": TowerSpec(
                    layers="encoder.encoder.layer",
                    batch_args=("attention_mask",),
                    attn=SiteSpec(
                        output="attention.output.dense", input="attention", norm="attention.output.LayerNorm"
                    ),
                    ffn=SiteSpec(output="output.dense", input="intermediate", norm="output.LayerNorm"),
                    norm_position="post",
                )
            },
        ),
        wrapper="hf_wav2vec2",
    )
)


def _ast_example() -> Example:
    def build(size: ModelSize = TINY, tokenizer=None):
        from transformers import ASTConfig, ASTModel

        config = ASTConfig(
            hidden_size=size.hidden, num_hidden_layers=size.layers, num_attention_heads=size.heads,
            intermediate_size=size.ffn, max_length=32, num_mel_bins=32, frequency_stride=8, time_stride=8,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )  # fmt: skip
        return ASTModel(config).eval()

    def inputs(seed: int = 0) -> dict:
        return {"input_values": torch.randn(2, 32, 32, generator=seeded(seed))}

    return Example(build, inputs, last_hidden_state)


# Audio spectrogram transformer: ViT blocks over log-mel patches.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_ast",
            class_names=("ASTModel",),
            model_types=("audio-spectrogram-transformer",),
            towers={
                "audio": TowerSpec(
                    layers="layers|encoder.layer",
                    attn=SiteSpec(output="attention", norm="layernorm_before"),
                    ffn=SiteSpec(output="mlp|output.dense", input="mlp|intermediate", norm="layernorm_after"),
                    norm_position="pre",
                )
            },
        ),
        examples={"hf_ast": _ast_example()},
    )
)
