"""Generation keeps working with adapters on every decoder block shape: ``generate()`` with its KV cache gives the
base model's tokens at init, other tokens once the adapters are non-zero, and the same tokens with and without the
cache (the adapters see each step's new positions only, as the sublayers do)."""

import logging

import pytest
import torch
import transformers

import mm_adapters as mma
from mm_adapters.state import iter_sites

logging.getLogger("mm_adapters").setLevel(logging.ERROR)

SMALL = dict(vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2)
SIZES = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    max_position_embeddings=64,
)
SEQ2SEQ = dict(
    d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
    encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64, decoder_start_token_id=1,
)  # fmt: skip

MODELS = {
    "gpt2_conv1d": lambda: transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=64, **SMALL)
    ),
    "llama": lambda: transformers.LlamaForCausalLM(
        transformers.LlamaConfig(num_key_value_heads=1, **SIZES, **SMALL)
    ),
    "gpt_neox_parallel": lambda: transformers.GPTNeoXForCausalLM(
        transformers.GPTNeoXConfig(use_parallel_residual=True, **SIZES, **SMALL)
    ),
    "t5": lambda: transformers.T5ForConditionalGeneration(
        transformers.T5Config(
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            decoder_start_token_id=0,
            **SMALL,
        )  # fmt: skip
    ),
    "bart_post_ln": lambda: transformers.BartForConditionalGeneration(
        transformers.BartConfig(**SEQ2SEQ, **SMALL)
    ),
}
PRESETS = {
    "pfeiffer": lambda: mma.AdapterConfig.pfeiffer(reduction_factor=4),
    "houlsby": lambda: mma.AdapterConfig.houlsby(reduction_factor=4),
}


def _generate(model, prompt, use_cache=True):
    with torch.no_grad():
        return model.generate(
            input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False,
            use_cache=use_cache, min_new_tokens=6,
        )  # fmt: skip


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_generate_with_kv_cache_keeps_the_base_tokens_at_init_and_follows_the_adapters(name, preset):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    prompt = torch.arange(5, 12).repeat(2, 1)
    base = _generate(model, prompt)
    mma.add_adapter(model, "task", PRESETS[preset]())  # no spec=: the automatic spec
    assert {site.tower for site in iter_sites(model)} >= {t for t in mma.state.get_state(model).spec.towers}
    assert torch.equal(_generate(model, prompt), base)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=1.0)
    adapted = _generate(model, prompt)
    assert not torch.equal(adapted, base)
    assert torch.equal(_generate(model, prompt, use_cache=False), adapted)
