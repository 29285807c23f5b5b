"""Shrinking any Hugging Face config by the names its size fields use (there is no common schema over ~630 types):
widths 64, 4 heads, 1-2 layers, FFN 128, few experts, 32-px images, no dropout; sub-configs too. Where a type's
fields depend on each other in ways these rules break, the sweep falls back to :func:`shrink.shrunk_hf_config`."""

from __future__ import annotations

import copy
import re

WIDTH, HEADS, LAYERS, FFN, HEAD_DIM = 64, 4, 2, 128, 16

_RULES: tuple[tuple[re.Pattern, object], ...] = tuple(
    (re.compile(pattern), value)
    for pattern, value in (
        (r"^(num_)?(hidden_|encoder_|decoder_|text_|vision_|audio_)?layers$|^n_layers?$|^num_(hidden_)?layers$"
         r"|^num_(encoder|decoder)_layers$|^depth$|^num_blocks$", LAYERS),
        (r"^(hidden_size|d_model|n_embd|embed_dim|embedding_size|hidden_dim|model_dim|projection_dim|"
         r"encoder_hidden_size|decoder_hidden_size|word_embed_proj_dim|text_embed_dim|vision_embed_dim|"
         r"d_embed|emb_dim|n_embed|dim|projection_size|pooler_hidden_size)$", WIDTH),
        (r"^(num_attention_heads|n_head|n_heads|num_heads|encoder_attention_heads|decoder_attention_heads)$",
         HEADS),
        (r"^(intermediate_size|ffn_dim|encoder_ffn_dim|decoder_ffn_dim|d_ff|n_inner|ffn_hidden_size|"
         r"inner_hidden_size|mlp_dim|feed_forward_size|d_inner|shared_expert_intermediate_size)$", FFN),
        (r"^(head_dim|d_kv|attention_head_size|kv_channels|d_head|attention_head_dim)$", HEAD_DIM),
        (r"^(num_experts|num_local_experts|n_routed_experts|moe_num_experts)$", 4),
        (r"^(num_experts_per_tok|moe_topk|top_k|num_experts_per_token)$", 2),
        (r"^(moe_intermediate_size|expert_intermediate_size)$", 64),
        (r"^(n_shared_experts|num_shared_experts)$", 1),
        (r"^(max_source_positions)$", 16),
        (r"^(num_frames)$", 2),
    )
)  # fmt: skip
_DROPOUT = re.compile(r"(dropout|drop_prob|layerdrop|drop_path_rate|mask_time_prob|mask_feature_prob)")
_KV_HEADS = re.compile(r"^(num_key_value_heads|n_kv_heads|num_kv_heads|multi_query_group_num)$")
_MAX_POSITIONS = 128


def _sub_configs(config) -> list[str]:
    from transformers import PretrainedConfig

    return [key for key, value in vars(config).items() if isinstance(value, PretrainedConfig)]


def generic_shrunk_config(config):
    """A copy of ``config`` with every size field these rules know made tiny (only ever smaller)."""
    config = copy.deepcopy(config)
    for key in _sub_configs(config):
        setattr(config, key, generic_shrunk_config(getattr(config, key)))
    fields = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    heads = fields.get("num_attention_heads")
    for key, value in fields.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and _DROPOUT.search(key):
            setattr(config, key, 0.0)
        elif isinstance(value, int) and _KV_HEADS.fullmatch(key):
            grouped = isinstance(heads, int) and value < heads
            setattr(config, key, min(value, 2 if grouped else HEADS))
        elif isinstance(value, int):
            for pattern, small in _RULES:
                if pattern.search(key):
                    setattr(config, key, min(value, small))
                    break
    _shrink_stages(config, fields)
    _shrink_images(config, fields)
    if isinstance(fields.get("max_position_embeddings"), int):
        config.max_position_embeddings = min(fields["max_position_embeddings"], _MAX_POSITIONS)
    _shrink_vocab(config)
    return config


def _shrink_stages(config, fields: dict) -> None:
    """Hierarchical models: one block per stage, stage widths 16, 32, 64, ...; heads 1, 2, 4, ..."""
    depths = fields.get("depths")
    if not isinstance(depths, (list, tuple)) or not depths:
        return
    stages = len(depths)
    config.depths = [1] * stages
    for key in ("hidden_sizes", "embed_dims", "dims", "widths", "hidden_dims"):
        if isinstance(fields.get(key), (list, tuple)) and len(fields[key]) == stages:
            setattr(config, key, [16 * 2**i for i in range(stages)])
    if isinstance(fields.get("embed_dim"), int) and not any(
        isinstance(fields.get(k), (list, tuple)) for k in ("hidden_sizes", "embed_dims")
    ):
        config.embed_dim = 16  # Swin-like: stage widths double from embed_dim
    for key in ("num_heads", "num_attention_heads"):
        if isinstance(fields.get(key), (list, tuple)) and len(fields[key]) == stages:
            setattr(config, key, [2**i for i in range(stages)])
    if isinstance(fields.get("window_size"), int):
        config.window_size = min(fields["window_size"], 4)


def _shrink_images(config, fields: dict) -> None:
    size, patch = fields.get("image_size"), fields.get("patch_size")
    patch = patch if isinstance(patch, int) else None
    if patch and patch > 8:
        config.patch_size = patch = 8
    if isinstance(size, int) and size > 32:
        config.image_size = max(32, 4 * (patch or 8))
    elif (
        isinstance(size, (list, tuple))
        and len(size) == 2
        and all(isinstance(s, int) and s > 32 for s in size)
    ):
        config.image_size = [max(32, 4 * (patch or 8))] * 2


def _shrink_vocab(config) -> None:
    vocab = getattr(config, "vocab_size", None)
    special = [v for k, v in vars(config).items() if k.endswith(("token_id", "token_index", "token_ids"))]
    special = [t for v in special for t in (v if isinstance(v, (list, tuple)) else [v])]
    if isinstance(vocab, int) and vocab > 100 and all(not isinstance(t, int) or t < 100 for t in special):
        config.vocab_size = 100
