"""Hugging Face text encoders. Task-head models (``BertForSequenceClassification``) are found through their base."""

from __future__ import annotations

from ..base import BackboneSpec, SiteSpec, TowerSpec
from ..family import TINY, Demo, Example, Family, ModelSize, last_hidden_state, token_batch
from ..registry import register_family


def _text_example(model_class: str, config_class: str, **extra) -> Example:
    def build(size: ModelSize = TINY, tokenizer=None):
        import transformers

        config = getattr(transformers, config_class)(
            vocab_size=len(tokenizer) if tokenizer is not None else 100, hidden_size=size.hidden, num_hidden_layers=size.layers,
            num_attention_heads=size.heads, intermediate_size=size.ffn, max_position_embeddings=64 if tokenizer is None else 128,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **extra,
        )  # fmt: skip
        return getattr(transformers, model_class)(config).eval()

    return Example(build, token_batch, last_hidden_state)


# BERT-style post-norm encoders: the FFN is split into ``intermediate`` (input) and ``output.dense``.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_bert",
            class_names=("BertModel", "RobertaModel", "XLMRobertaModel", "CamembertModel", "ElectraModel"),
            model_types=(
                "bert",
                "roberta",
                "xlm-roberta",
                "camembert",
                "electra",
                "deberta",
                "deberta-v2",
                "data2vec-text",
                "ernie",
                "roformer",
                "xmod",
                "rembert",
            ),  # fmt: skip
            towers={
                "text": TowerSpec(
                    layers="encoder.layer",
                    batch_args=("attention_mask",),
                    attn=SiteSpec(
                        output="attention.output.dense", input="attention", norm="attention.output.LayerNorm"
                    ),
                    ffn=SiteSpec(output="output.dense", input="intermediate", norm="output.LayerNorm"),
                    hidden_size="output.dense.out_features",
                    norm_position="post",
                )
            },
        ),
        wrapper="hf_bert",
        examples={
            "hf_bert": _text_example("BertModel", "BertConfig"),
            "hf_deberta_v2": _text_example("DebertaV2Model", "DebertaV2Config"),
        },
        demos=(
            Demo(
                "demo-bert",
                "hf_bert",
                tokenizer="minilm",
                size=ModelSize(hidden=128, layers=2, heads=4, ffn=512),
            ),
        ),
    )
)

# The pre-LN members of the BERT layout (XLM-R-XL, Megatron-BERT, RoBERTa-PreLayerNorm): the LayerNorm comes
# before each sublayer, under a different name in each.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_bert_pre_ln",
            class_names=("XLMRobertaXLModel", "MegatronBertModel", "RobertaPreLayerNormModel"),
            model_types=("xlm-roberta-xl", "megatron-bert", "roberta-prelayernorm"),
            towers={
                "text": TowerSpec(
                    layers="encoder.layer",
                    batch_args=("attention_mask",),
                    attn=SiteSpec(
                        output="attention.output.dense",
                        input="attention",
                        norm="attention.self_attn_layer_norm|attention.ln|attention.LayerNorm",
                    ),
                    ffn=SiteSpec(output="output.dense", input="intermediate", norm="LayerNorm|ln"),
                    norm_position="pre",
                )
            },
        ),
        wrapper="hf_bert",
    )
)

# MPNet: the attention output projection ``o`` sits inside ``attention.attn``.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_mpnet",
            class_names=("MPNetModel",),
            model_types=("mpnet",),
            towers={
                "text": TowerSpec(
                    layers="encoder.layer",
                    batch_args=("attention_mask", "position_bias"),
                    attn=SiteSpec(output="attention.attn.o", input="attention", norm="attention.LayerNorm"),
                    ffn=SiteSpec(output="output.dense", input="intermediate", norm="output.LayerNorm"),
                    norm_position="post",
                )
            },
        ),
        wrapper="hf_bert",
        examples={"hf_mpnet": _text_example("MPNetModel", "MPNetConfig")},
    )
)

register_family(
    Family(
        spec=BackboneSpec(
            family="hf_distilbert",
            class_names=("DistilBertModel",),
            model_types=("distilbert",),
            towers={
                "text": TowerSpec(
                    layers="transformer.layer",
                    batch_args=("attention_mask",),
                    attn=SiteSpec(output="attention.out_lin", input="attention", norm="sa_layer_norm"),
                    ffn=SiteSpec(output="ffn.lin2", input="ffn", norm="output_layer_norm"),
                    norm_position="post",
                )
            },
        ),
        wrapper="hf_bert",
    )
)

# ALBERT shares one layer across depth: the adapter in that layer is used at every depth, like its weights.
register_family(
    Family(
        spec=BackboneSpec(
            family="hf_albert",
            class_names=("AlbertModel",),
            model_types=("albert",),
            towers={
                "text": TowerSpec(
                    layers="encoder.albert_layer_groups.*.albert_layers",
                    batch_args=("attention_mask",),
                    attn=SiteSpec(output="attention.dense", input="attention", norm="attention.LayerNorm"),
                    ffn=SiteSpec(output="ffn_output", input="ffn", norm="full_layer_layer_norm"),
                    norm_position="post",
                )
            },
        ),
        wrapper="hf_bert",
    )
)

register_family(
    Family(
        spec=BackboneSpec(
            family="hf_modernbert",
            class_names=("ModernBertModel",),
            model_types=("modernbert",),
            towers={
                "text": TowerSpec(
                    layers="layers",
                    batch_args=("attention_mask",),
                    attn=SiteSpec(output="attn", norm="attn_norm"),
                    ffn=SiteSpec(output="mlp", norm="mlp_norm"),
                    norm_position="pre",
                )
            },
        ),
        wrapper="hf_bert",
    )
)
