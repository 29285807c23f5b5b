"""Res-post-norm blocks, ``x + N(f(x))`` (timm Swin-v2 and Swin-v2-CR, ``ResPostBlock``, ``EvaBlockPostNorm``, HF
``Swinv2Layer``; ``x + f(x)`` for XCiT's class-attention FFN and LeViT): the sites sit on ``N``'s output ``h`` and the
stream is the sublayer input ``x``. Each block's output is compared with the placement table of
``mm_adapters/placements.py`` computed by hand from the block's own modules:

- ``output`` (Houlsby): ``x + h + A(h)``;
- ``residual_sum`` (Pfeiffer): ``z + A(z)``, ``z = x + h``;
- ``residual`` (parallel), and ``sublayer_input``: ``x + h + s*A(x)``.
"""

import copy

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters import AdapterConfig
from mm_adapters.coverage import Result, check_model
from mm_adapters.specs import BackboneSpec, SiteSpec, TowerSpec, tower_blocks
from mm_adapters.specs.base import matching_path
from mm_adapters.state import get_state, iter_sites


# -- tiny models -----------------------------------------------------------------------------------------------------
def _randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """Frozen, eval, with every norm's affine parameters (and XCiT's layer scales) drawn at random: timm's Swin-v2
    starts its post-norms at zero (each block the identity), which would make ``h`` zero and hide the placement."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm) and module.elementwise_affine:
                module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            for name in ("gamma1", "gamma2"):
                scale = getattr(module, name, None)
                if isinstance(scale, nn.Parameter):
                    scale.copy_(1 + 0.3 * torch.randn(scale.shape, generator=generator))
    return model.eval().requires_grad_(False)


def _timm(name: str, **kwargs) -> nn.Module:
    import timm

    torch.manual_seed(0)
    return _randomised(timm.create_model(name, pretrained=False, num_classes=0, img_size=32, **kwargs))


# block 1 of stage 0 shifts its windows
_SWIN = dict(embed_dim=16, depths=(2, 1), num_heads=(2, 4), window_size=4)
_VIT = dict(patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)


def _hf_swinv2() -> nn.Module:
    from transformers import Swinv2Config, Swinv2Model

    config = Swinv2Config(
        image_size=32, patch_size=4, embed_dim=16, depths=[2, 1], num_heads=[2, 4], window_size=4,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0,
    )  # fmt: skip
    torch.manual_seed(0)
    return _randomised(Swinv2Model(config))


def _build(name: str) -> nn.Module:
    from timm.models.vision_transformer import ResPostBlock

    if name == "timm_swinv2":
        return _timm("swinv2_tiny_window8_256", **_SWIN)
    if name == "timm_swinv2_cr":
        return _timm("swinv2_cr_tiny_ns_224", **_SWIN)
    if name == "timm_res_post_vit":
        return _timm("vit_tiny_patch16_224", block_fn=ResPostBlock, **_VIT)
    if name == "timm_eva_post_norm":  # no rotary embedding: the attention then takes the block input alone
        return _timm("eva02_tiny_patch14_224", use_post_norm=True, use_rot_pos_emb=False, **_VIT)
    if name == "timm_xcit":
        return _timm("xcit_nano_12_p16_224", embed_dim=16, depth=1, num_heads=2, cls_attn_layers=2)
    if name == "hf_swinv2":
        return _hf_swinv2()
    raise KeyError(name)


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _run(model: nn.Module, seed: int = 0) -> torch.Tensor:
    if hasattr(model, "forward_features"):
        return model.forward_features(_images(seed))
    return model(pixel_values=_images(seed)).last_hidden_state


def _nonzero(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for site in iter_sites(model):
            for adapter in site.adapters.values():
                adapter.up.weight.copy_(0.1 * torch.randn(adapter.up.weight.shape, generator=generator))
                adapter.down.bias.fill_(0.1)  # tiny random models: keep the ReLU alive


# -- the placement table, by hand ------------------------------------------------------------------------------------
def _base(module: nn.Module) -> nn.Module:
    return getattr(module, "base_layer", module)


def _adapter(module: nn.Module):
    """The active adapter of the site wrapping ``module``, or None where no site wraps it."""
    adapters = getattr(module, "adapters", None)
    return adapters["a"] if adapters is not None and "a" in adapters else None


def _delta(adapter, u: torch.Tensor) -> torch.Tensor:
    # Adapter+'s scaling is learned per channel
    scale = adapter.scale.weight if adapter.scale is not None else adapter.scaling
    return scale * adapter.up(adapter.act(adapter.down(u)))


def _site_output(h: torch.Tensor, x: torch.Tensor, adapter) -> torch.Tensor:
    """What the block adds to its stream ``x`` for a sublayer output ``h`` (after its norm), per ``adapter.reads``."""
    if adapter is None:
        return h
    assert x.shape == h.shape
    reads = {"output": h, "residual_sum": x + h, "block_output": x + h, "residual": x, "sublayer_input": x}
    read = reads[adapter.reads]
    return h + _delta(adapter, read)


def _swin_v2_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm ``SwinTransformerV2Block`` / ``SwinTransformerV2CrBlock`` on ``x`` (B, H, W, C)."""
    batch, height, width, channels = x.shape
    # the block's own windowing code
    windowed = block._attn if hasattr(block, "_attn") else block._shifted_window_attn
    h = _base(block.norm1)(windowed(x))
    x = x + _site_output(h, x, _adapter(block.norm1))
    x = x.reshape(batch, -1, channels)
    h = _base(block.norm2)(_base(block.mlp)(x))
    x = x + _site_output(h, x, _adapter(block.norm2))
    x = getattr(block, "norm3", nn.Identity())(x)
    return x.reshape(batch, height, width, channels)


def _res_post_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm ``ResPostBlock`` / ``EvaBlockPostNorm``: ``x + norm1(attn(x))``, then ``x + norm2(mlp(x))``."""
    h = _base(block.norm1)(_base(block.attn)(x))
    x = x + _site_output(h, x, _adapter(block.norm1))
    h = _base(block.norm2)(_base(block.mlp)(x))
    return x + _site_output(h, x, _adapter(block.norm2))


def _class_attention_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm XCiT ``ClassAttentionBlock``: the attention and the FFN update the class token only; the FFN adds its
    output, unnormalised, to its own (normalised) input (``norm`` None)."""
    normed = block.norm1(x)
    cls = normed[:, :1]
    h = _base(block.attn)(normed)
    x = x + block.gamma1 * torch.cat([_site_output(h, cls, _adapter(block.attn)), normed[:, 1:]], dim=1)
    x = block.norm2(x) if block.tokens_norm else torch.cat([block.norm2(x[:, :1]), x[:, 1:]], dim=1)
    cls = x[:, :1]
    h = _base(block.mlp)(cls)
    return x + torch.cat([block.gamma2 * _site_output(h, cls, _adapter(block.mlp)), x[:, 1:]], dim=1)


def _hf_swinv2_block(block: nn.Module, x: torch.Tensor, attention_h: torch.Tensor) -> torch.Tensor:
    """HF ``Swinv2Layer`` on ``x`` (B, L, C), given its attention branch's normalised output ``attention_h``
    (``layernorm_before``'s output; the windowing in between is the layer's own code)."""
    x = x + _site_output(attention_h, x, _adapter(block.layernorm_before))
    h = _base(block.layernorm_after)(_base(block.output)(_base(block.intermediate)(x)))
    return x + _site_output(h, x, _adapter(block.layernorm_after))


_BY_HAND = {
    "SwinTransformerV2Block": _swin_v2_block,
    "SwinTransformerV2CrBlock": _swin_v2_block,
    "ResPostBlock": _res_post_block,
    "EvaBlockPostNorm": _res_post_block,
    "ClassAttentionBlock": _class_attention_block,
}


def _res_post_blocks(model: nn.Module) -> list[nn.Module]:
    spec = get_state(model).spec
    return [
        block
        for tower in spec.towers.values()
        for block in tower_blocks(model, tower)
        if tower.norm_position_of(block) == "res_post"
    ]


def _check_blocks_by_hand(model: nn.Module) -> int:
    """Run the model once, recording each res-post-norm block's input and output, and compare every output with
    the table computed by hand; returns how many blocks were checked."""
    blocks = _res_post_blocks(model)
    seen, handles = {}, []
    for block in blocks:

        def record(module, args, kwargs, output):
            hidden = args[0] if args else kwargs["hidden_states"]
            seen[id(module)] = (hidden.clone(), args[1:], output[0] if isinstance(output, tuple) else output)

        handles.append(block.register_forward_hook(record, with_kwargs=True))
        if type(block).__name__ == "Swinv2Layer":  # its attention branch ends at layernorm_before

            def attention_h(module, args, output, block=block):
                seen[("h", id(block))] = output

            handles.append(_base(block.layernorm_before).register_forward_hook(attention_h))
    with torch.no_grad():
        _run(model)
        for handle in handles:
            handle.remove()
        for block in blocks:
            x, _, got = seen[id(block)]
            if type(block).__name__ == "Swinv2Layer":
                expected = _hf_swinv2_block(block, x, seen[("h", id(block))])
            else:
                expected = _BY_HAND[type(block).__name__](block, x)
            torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
    return len(blocks)


CONFIGS = {
    "houlsby": AdapterConfig.houlsby(),  # attention and FFN, reads the output
    "pfeiffer": AdapterConfig.pfeiffer(),  # FFN, reads the residual sum
    "parallel": AdapterConfig.parallel(),  # FFN, reads the stream; scaling 4
    "parallel_sublayer_input": AdapterConfig.parallel(reads="sublayer_input"),  # no norm before f: the same
    "adapter_plus": AdapterConfig.adapter_plus(init="zero"),  # FFN, reads the block output x + h
}
STREAM_ON_ATTENTION = {  # blocks whose attention sees the stream as it is added (no windows, every token)
    "pfeiffer_attn": AdapterConfig.pfeiffer(sites=("attn", "ffn")),
    "parallel_attn": AdapterConfig.parallel(sites=("attn", "ffn")),
}
MODELS = [
    "timm_swinv2",
    "timm_swinv2_cr",
    "timm_res_post_vit",
    "timm_eva_post_norm",
    "timm_xcit",
    "hf_swinv2",
]
UNWINDOWED = ["timm_res_post_vit", "timm_eva_post_norm"]


@pytest.mark.parametrize(
    "name, config",
    [(name, config) for name in MODELS for config in CONFIGS]
    + [(name, config) for name in UNWINDOWED for config in STREAM_ON_ATTENTION],
)
def test_block_output_is_the_res_post_norm_table(name, config):
    model = _build(name)
    with torch.no_grad():
        frozen = _run(model)
    mma.add_adapter(model, "a", {**CONFIGS, **STREAM_ON_ATTENTION}[config])
    with torch.no_grad():
        torch.testing.assert_close(_run(model), frozen, atol=1e-5, rtol=0)  # identity at init
    _nonzero(model)
    assert _check_blocks_by_hand(model) >= 2
    with torch.no_grad():
        assert (_run(model) - frozen).abs().max() > 1e-3  # the adapters do something


@pytest.mark.parametrize(
    "name, sites_on",
    [
        ("timm_swinv2", ("norm1", "norm2")),
        ("timm_eva_post_norm", ("norm1", "norm2")),
        ("hf_swinv2", ("layernorm_before", "layernorm_after")),
        ("timm_xcit", ("attn", "mlp")),  # class attention: no norm on either sublayer output
    ],
)
def test_sites_sit_on_the_post_norms_and_tap_the_sublayer_inputs(name, sites_on):
    model = _build(name)
    spec = mma.detect_spec(model)
    tower = next(
        t for t in spec.towers.values() if t.norm_position_of(tower_blocks(model, t)[0]) == "res_post"
    )
    block = tower_blocks(model, tower)[0]
    sites = tower.sites(block)
    assert tuple(matching_path(block, sites[kind].output) for kind in ("attn", "ffn")) == sites_on
    expected_inputs = {"hf_swinv2": ("attention", "intermediate")}.get(name, ("attn", "mlp"))
    assert tuple(matching_path(block, sites[kind].input) for kind in ("attn", "ffn")) == expected_inputs
    assert all(site.norm is None for site in sites.values())  # nothing normalises the stream
    assert tower.sites() == {"attn": tower.attn, "ffn": tower.ffn}  # without a block: the spec as written


def test_pre_ln_blocks_of_the_same_family_keep_their_sites():
    """timm's Swin v1 shares the ``timm_swin`` entry with Swin-v2; its pre-LN blocks keep the sites on the
    sublayers, and their LayerNorms, while the v2 blocks move them."""
    v1 = _timm("swin_tiny_patch4_window7_224", patch_size=4, **_SWIN)
    v2 = _build("timm_swinv2")
    for model, position, attn_output, ffn_norm in (
        (v1, "pre", "attn", "norm2"),
        (v2, "res_post", "norm1", None),
    ):
        spec = mma.detect_spec(model)
        assert spec.family == "timm_swin"
        tower = spec.towers["vision"]
        block = tower_blocks(model, tower)[0]
        assert tower.norm_position_of(block) == position
        assert (tower.sites(block)["attn"].output, tower.sites(block)["ffn"].norm) == (attn_output, ffn_norm)


def test_on_res_post_block_keeps_a_norm_free_sublayer_on_its_output():
    site = SiteSpec(output="mlp", input=None, norm=None, hidden_size="mlp.fc2.out_features")
    assert site.on_res_post_block() == SiteSpec(output="mlp", input="mlp", hidden_size="mlp.fc2.out_features")
    normed = SiteSpec(output="mlp|output.dense", input="mlp|intermediate", norm="layernorm_after")
    assert normed.on_res_post_block() == SiteSpec(output="layernorm_after", input="mlp|intermediate")


def test_a_family_with_an_unknown_norm_position_name_is_refused():
    tower = TowerSpec(layers="blocks", attn=SiteSpec("attn"), ffn=SiteSpec("mlp"), norm_position="respost")
    with pytest.raises(ValueError, match="norm_position must be one of .*'res_post'.*'respost'"):
        tower.sites(nn.Linear(2, 2))


@pytest.mark.parametrize(
    "name, config",
    [
        ("timm_swinv2", AdapterConfig.parallel(sites=("attn",))),
        ("timm_swinv2", AdapterConfig.pfeiffer(sites=("attn",))),
        ("timm_swinv2_cr", AdapterConfig.parallel(sites=("attn",))),
        ("hf_swinv2", AdapterConfig.parallel(sites=("attn",))),
        ("hf_swinv2", AdapterConfig.pfeiffer(sites=("attn",))),
        ("timm_xcit", AdapterConfig.parallel(sites=("attn",), towers=("class_attn",))),  # class token only
    ],
)
def test_a_stream_read_where_the_attention_does_not_see_the_stream_is_a_clear_error(name, config):
    """Windowed attention reads (windows, tokens, C), the stream is (B, H, W, C): broadcasting or reshaping them
    together would give a silently wrong result, so the forward stops and says which reads to use."""
    model = _build(name)
    mma.add_adapter(model, "a", config)
    _nonzero(model)
    with pytest.raises(RuntimeError, match=r"got a stream of shape .* use reads='output'"):
        with torch.no_grad():
            _run(model)


@pytest.mark.parametrize(
    "name, config",
    [
        ("timm_swinv2", AdapterConfig.houlsby()),
        ("timm_swinv2_cr", AdapterConfig.pfeiffer()),
        ("hf_swinv2", AdapterConfig.parallel()),
    ],
)
def test_save_and_load_round_trip(name, config, tmp_path):
    model = _build(name)
    mma.add_adapter(model, "a", config)
    _nonzero(model)
    with torch.no_grad():
        expected = _run(model, seed=4)
    mma.save_adapter(model, "a", tmp_path / "a")
    fresh = _build(name)
    with torch.no_grad():
        base = _run(fresh, seed=4)
    mma.load_adapter(fresh, tmp_path / "a")
    with torch.no_grad():
        torch.testing.assert_close(_run(fresh, seed=4), expected, atol=1e-6, rtol=0)
    assert (expected - base).abs().max() > 1e-3
    assert {(s.layer_index, s.site) for s in iter_sites(fresh)} == {
        (s.layer_index, s.site) for s in iter_sites(model)
    }


def test_hf_swinv2_passes_the_coverage_check_with_no_spec():
    model = _hf_swinv2()
    result = check_model(model, lambda m: _run(m), Result("transformers", "swinv2"))
    assert result.ok, result.error
    assert (result.family, result.towers) == ("hf_swin", {"vision": 3})


def test_an_explicit_res_post_spec_places_parallel_on_the_norm():
    """A hand-written spec (``spec=``) with ``norm_position='res_post'``: ``ResPostBlock`` adapted as Eva's."""
    model = _build("timm_res_post_vit")
    spec = BackboneSpec(
        family="mine",
        towers={
            "vision": TowerSpec(
                layers="blocks",
                attn=SiteSpec(output="attn", norm="norm1"),
                ffn=SiteSpec(output="mlp", norm="norm2"),
                norm_position="res_post",
            )
        },
    )
    reference = copy.deepcopy(model)
    torch.manual_seed(3)  # the same down-projections in both
    mma.add_adapter(model, "a", AdapterConfig.parallel(sites=("attn", "ffn")), spec=spec)
    torch.manual_seed(3)
    mma.add_adapter(reference, "a", AdapterConfig.parallel(sites=("attn", "ffn")))  # the timm_vit entry
    _nonzero(model), _nonzero(reference)
    assert _check_blocks_by_hand(model) == 2
    with torch.no_grad():
        torch.testing.assert_close(_run(model), _run(reference), atol=1e-6, rtol=0)
