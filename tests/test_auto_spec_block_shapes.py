"""Block shapes the automatic spec adapts: transformers' ``Conv1D`` projections (GPT-2), parallel-residual blocks
(GPT-NeoX, Phi; the placement rule in docs/placements.md checked by hand), post-LN decoder blocks with their norms and
cross-attention (BART, T5), residuals added in the parent's loop, stages with downsampling between them, and several
attention / FFN pairs inside one stage module; every block of every tower adapted."""

import logging

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn

import mm_adapters as mma
from mm_adapters.specs import auto_spec, resolve_path, tower_blocks
from mm_adapters.state import iter_sites

logging.getLogger("mm_adapters").setLevel(logging.ERROR)

SMALL = dict(vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2)
PRESETS = {
    "houlsby": lambda: mma.AdapterConfig.houlsby(reduction_factor=4),
    "pfeiffer": lambda: mma.AdapterConfig.pfeiffer(reduction_factor=4),
    "parallel": lambda: mma.AdapterConfig.parallel(sites=("attn", "ffn"), reduction_factor=4),
}  # a bottleneck of 4 on width 16: a ReLU bottleneck of 1 can be dead on a tiny random model


def _gpt2():
    return transformers.GPT2Model(
        transformers.GPT2Config(n_embd=16, n_layer=2, n_head=2, n_positions=32, **SMALL)
    )


def _neox():
    config = transformers.GPTNeoXConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
        use_parallel_residual=True, **SMALL,
    )  # fmt: skip
    return transformers.GPTNeoXModel(config)


def _phi():
    config = transformers.PhiConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
        **SMALL,
    )  # fmt: skip
    return transformers.PhiModel(config)


def _granite_moe():
    """A mixture-of-experts FFN whose experts are stacked parameters (no Linear) behind a softmax router."""
    config = transformers.GraniteMoeConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
        num_local_experts=4, num_experts_per_tok=2, **SMALL,
    )  # fmt: skip
    return transformers.GraniteMoeModel(config)


def _check_presets(build, run):
    """Every preset: identity at init, output changed once non-zero, gradients to every adapter, none to the base."""
    for preset, config in PRESETS.items():
        torch.manual_seed(0)
        model = build().eval()
        with torch.no_grad():
            base = run(model)
        spec = auto_spec(model, run=run)
        mma.add_adapter(model, "task", config(), spec=spec)
        with torch.no_grad():
            torch.testing.assert_close(run(model), base, atol=1e-5, rtol=1e-5)
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.normal_(std=0.1)
        output = run(model)
        assert (output - base).abs().max() > 1e-3, preset
        output.pow(2).sum().backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        assert trainable and all(p.grad is not None and p.grad.any() for _, p in trainable), preset
        assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
        sites = {(s.tower, s.layer_index, s.site) for s in iter_sites(model)}
        expected = {
            (name, index, site)
            for name, tower in spec.towers.items()
            for index in range(len(tower_blocks(model, tower)))
            for site in config().sites
        }
        assert sites == expected, preset


def _ids(model):
    return model(input_ids=torch.arange(3, 11).repeat(2, 1)).last_hidden_state


@pytest.mark.parametrize(
    "build",
    [_gpt2, _neox, _phi, _granite_moe],
    ids=["gpt2_conv1d", "neox_parallel", "phi_shared_norm", "moe"],
)
def test_decoder_only_block_shapes_take_every_preset(build):
    _check_presets(build, _ids)


class ParallelBlock(nn.Module):
    """``r + attn(ln1(r)) + mlp(ln2(r))``."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 32), nn.GELU(), nn.Linear(32, width))

    def attn(self, x):
        q, k, v = self.qkv(x).chunk(3, -1)
        return self.proj(F.scaled_dot_product_attention(q, k, v))

    def forward(self, r):
        return r + self.attn(self.ln1(r)) + self.mlp(self.ln2(r))


class ParallelModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ParallelBlock() for _ in range(2))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def test_the_parallel_residual_placement_rule_by_hand():
    """docs/placements.md: each sublayer's stream is the block input r; pfeiffer gives r + h_a + h_f + A(r + h_f),
    parallel r + h_a + h_f + s*A(r)."""
    x = torch.randn(2, 5, 16)
    for preset, expected_input in (("pfeiffer", lambda r, h: r + h), ("parallel", lambda r, h: r)):
        torch.manual_seed(0)
        model = ParallelModel().eval()
        spec = auto_spec(model, run=lambda m: m(x))
        assert spec.towers["blocks"].norm_position_of(model.blocks[0]) == "pre"
        mma.add_adapter(
            model, "task", PRESETS[preset]() if preset == "pfeiffer" else mma.AdapterConfig.parallel()
        )
        block, r = model.blocks[0], x
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.normal_(std=0.1)
            site = block.mlp
            h_a, h_f = (
                block.attn(block.ln1.base_layer(r) if hasattr(block.ln1, "base_layer") else block.ln1(r)),
                None,
            )
            ln2 = getattr(block.ln2, "base_layer", block.ln2)
            h_f = site.base_layer(ln2(r))
            adapter = site.adapters["task"]
            expected = r + h_a + h_f + adapter(expected_input(r, h_f))
            torch.testing.assert_close(block(r), expected, atol=1e-5, rtol=1e-5)


def _bart():
    config = transformers.BartConfig(
        d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32, decoder_start_token_id=1, **SMALL,
    )  # fmt: skip
    return transformers.BartModel(config)


def _t5():
    config = transformers.T5Config(
        d_model=16, d_kv=8, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=2, decoder_start_token_id=0,
        **SMALL,
    )  # fmt: skip
    return transformers.T5Model(config)


def _seq2seq(model):
    ids = torch.arange(3, 11).repeat(2, 1)
    return model(input_ids=ids, decoder_input_ids=ids[:, :4]).last_hidden_state


@pytest.mark.parametrize("build", [_bart, _t5], ids=["bart_post_ln", "t5_pre_ln"])
def test_encoder_decoders_get_their_norms_and_cross_attention(build):
    model = build().eval()
    spec = auto_spec(model)
    decoder = next(tower for name, tower in spec.towers.items() if name.startswith("decoder"))
    assert decoder.cross_attn is not None and decoder.norm_position in ("pre", "post")
    block = tower_blocks(model, decoder)[0]
    assert "EncDecAttention" in decoder.cross_attn.output or decoder.cross_attn.output == "encoder_attn"
    if decoder.norm_position == "post":  # BART: every sublayer's LayerNorm
        assert decoder.ffn.norm == "final_layer_norm" and decoder.cross_attn.norm == "encoder_attn_layer_norm"
    mma.add_adapter(model, "x", mma.AdapterConfig.houlsby(sites=("attn", "cross_attn", "ffn")), spec=spec)
    cross = [s for s in iter_sites(model) if s.site == "cross_attn"]
    assert len(cross) == 2 and resolve_path(block, decoder.cross_attn.output) in cross
    _check_presets(build, _seq2seq)


class Attention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm, self.qkv, self.out = (
            nn.LayerNorm(width),
            nn.Linear(width, 3 * width),
            nn.Linear(width, width),
        )

    def forward(self, x):
        q, k, v = self.qkv(self.norm(x)).chunk(3, -1)
        return self.out(F.scaled_dot_product_attention(q, k, v))


class FeedForward(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)
        )

    def forward(self, x):
        return self.net(x)


class LoopViT(nn.Module):
    """Residuals added in the parent's loop over ``[attn, ff]`` pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.layers = nn.ModuleList(nn.ModuleList([Attention(16), FeedForward(16)]) for _ in range(3))

    def forward(self, x):
        x = self.embed(x)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.attn, self.ff = Attention(width), FeedForward(width)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.ff(x)


class Downsample(nn.Module):
    def __init__(self, width_in: int, width_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(width_in, width_out)

    def forward(self, x):
        return self.proj(F.avg_pool1d(x.transpose(1, 2), 2).transpose(1, 2))


class Hierarchical(nn.Module):
    """Later stages start with pooling / downsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.stages = nn.ModuleList([
            nn.Sequential(Block(16), Block(16)),
            nn.Sequential(Downsample(16, 32), Block(32), Block(32)),
            nn.Sequential(Downsample(32, 32), Block(32)),
        ])  # fmt: skip

    def forward(self, x):
        x = self.embed(x)
        for stage in self.stages:
            x = stage(x)
        return x


class Stage(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.attn1, self.ff1, self.attn2, self.ff2 = (
            Attention(width),
            FeedForward(width),
            Attention(width),
            FeedForward(width),
        )

    def forward(self, x):
        x = x + self.attn1(x)
        x = x + self.ff1(x)
        x = x + self.attn2(x)
        return x + self.ff2(x)


class TwoPairStages(nn.Module):
    """Several attention / FFN pairs inside one stage module."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.stages = nn.ModuleList(Stage(16) for _ in range(2))

    def forward(self, x):
        x = self.embed(x)
        for stage in self.stages:
            x = stage(x)
        return x


# model, the sublayer modules that must all hold adapters (attention, FFN)
HAND_WRITTEN = {
    "parent_loop": (LoopViT, lambda m: [(layer[0], layer[1]) for layer in m.layers]),
    "hierarchical": (Hierarchical, lambda m: [(b.attn, b.ff) for s in m.stages for b in s if isinstance(b, Block)]),
    "two_pairs_per_stage": (TwoPairStages, lambda m: [p for s in m.stages for p in ((s.attn1, s.ff1), (s.attn2, s.ff2))]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_every_block_of_hand_written_shapes_is_adapted(name):
    build, pairs = HAND_WRITTEN[name]
    model = build().eval()
    mma.add_adapter(model, "task", mma.AdapterConfig.houlsby())  # no spec=, no example_inputs=
    for attn, ff in pairs(model):
        assert isinstance(attn, mma.site.AdapterSite) and isinstance(ff, mma.site.AdapterSite)
    _check_presets(build, lambda m: m(torch.randn(2, 8, 8, generator=torch.Generator().manual_seed(0))))


@pytest.mark.parametrize(
    "build", [_gpt2, _neox, _bart], ids=["gpt2_conv1d", "neox_parallel", "bart_cross_attn"]
)
def test_save_load_stack_and_adapter_drop_on_the_new_shapes(build, tmp_path):
    """Saving and loading, stacking two adapters and AdapterDrop keep working on automatic specs of these shapes."""
    run = _seq2seq if build is _bart else _ids
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        base = run(model)
    mma.add_adapter(model, "a", PRESETS["pfeiffer"]())
    mma.add_adapter(model, "b", PRESETS["parallel"](), set_active=False)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=0.1)
        mma.set_active_adapters(model, ["a", "b"])
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=0.1)
        stacked = run(model)
        mma.set_active_adapters(model, "a")
        only_a = run(model)
    assert (stacked - only_a).abs().max() > 1e-3 and (only_a - base).abs().max() > 1e-3
    mma.save_adapter(model, "a", tmp_path / "a")
    torch.manual_seed(0)
    fresh = build().eval()
    mma.load_adapter(fresh, tmp_path / "a")
    with torch.no_grad():
        torch.testing.assert_close(run(fresh), only_a, atol=1e-5, rtol=1e-5)
    for site in iter_sites(fresh):  # AdapterDrop everywhere: the base model's output
        site.dropped = True
    with torch.no_grad():
        torch.testing.assert_close(run(fresh), base, atol=1e-5, rtol=1e-5)
