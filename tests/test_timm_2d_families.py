"""timm's hybrid and multiscale families: CoAtNet / MaxViT (MaxxVit: transformer blocks picked by class out of mixed
stages, NCHW blocks adapted channels-last, a downsampling shortcut as the attention residual) and MViT-v2 (sites of
one block with different widths, a widening FFN shortcut, a pooled attention shortcut that cannot be tapped)."""

import copy
import dataclasses

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig, Parallel
from mm_adapters.specs import tower_blocks
from mm_adapters.specs.families.timm import _tiny_mvitv2
from mm_adapters.specs.family import TINY
from mm_adapters.state import get_state, iter_sites

from tiny_backbones import ALL_FACTORIES


def _nchw_maxvit():
    """MaxViT with NCHW partition units (``PartitionAttention2d``) and layer scales, as ``use_nchw_attn`` builds it."""
    from timm.models.maxxvit import MaxxVit, model_cfgs

    cfg = model_cfgs["test_maxvit"]
    transformer = dataclasses.replace(cfg.transformer_cfg, use_nchw_attn=True, init_values=0.1)
    return MaxxVit(dataclasses.replace(cfg, transformer_cfg=transformer), img_size=32, num_classes=0).eval()


def _model(name: str):
    if name == "mvitv2_expand_attn":  # timm's default layout: widens (and pools) in the attention
        torch.manual_seed(0)
        return _tiny_mvitv2(TINY, expand_attn=True).requires_grad_(False)
    if name == "maxvit_nchw":
        torch.manual_seed(0)
        return _nchw_maxvit().requires_grad_(False)
    return ALL_FACTORIES[name](0).model.requires_grad_(False)


def _run(model, seed: int = 0):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    return model.forward_features(images)


def _nonzero(model, std: float = 0.1):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for site in iter_sites(model):
            for adapter in site.adapters.values():
                adapter.up.weight.copy_(std * torch.randn(adapter.up.weight.shape, generator=generator))
                adapter.down.bias.fill_(0.1)  # tiny random models: keep the ReLU alive


MODELS = ["timm_coatnet", "timm_maxvit", "maxvit_nchw", "timm_mvitv2", "mvitv2_expand_attn"]
CONFIGS = {
    "houlsby": AdapterConfig.houlsby(),
    "pfeiffer": AdapterConfig.pfeiffer(),
    "parallel": AdapterConfig.parallel(),
    "pfeiffer_attn": AdapterConfig.pfeiffer(sites=("attn", "ffn"), layers=(0,)),
    "parallel_attn": AdapterConfig.parallel(sites=("attn", "ffn"), layers=(0,)),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_identity_at_init_and_only_adapters_train(name, config):
    model = _model(name)
    if name == "mvitv2_expand_attn" and config.endswith("_attn"):
        config = config.replace("_attn", "")  # its layer 0 attention is fine, but keep the matrix small
    with torch.no_grad():
        frozen = _run(model)
    mma.add_adapter(model, "a", CONFIGS[config])
    with torch.no_grad():
        torch.testing.assert_close(_run(model), frozen, atol=1e-5, rtol=0)
    _nonzero(model)
    output = _run(model)
    (output * torch.randn(output.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    adapter_parameters = 0
    for pname, parameter in model.named_parameters():
        if parameter.requires_grad:
            adapter_parameters += 1
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, pname
        else:
            assert parameter.grad is None, pname
    assert adapter_parameters > 0


def test_coatnet_adapts_only_its_transformer_blocks_channels_first():
    model = _model("timm_coatnet")
    spec = mma.detect_spec(model)
    assert spec.family == "timm_maxvit" and not spec.notes
    blocks = tower_blocks(model, spec.towers["vision"])
    stage_blocks = [type(b).__name__ for stage in model.stages for b in stage.blocks]
    assert "MbConvBlock" in stage_blocks  # a hybrid model ...
    assert [type(b).__name__ for b in blocks] == [
        n for n in stage_blocks if n == "TransformerBlock2d"
    ]  # ... in order
    mma.add_adapter(model, "a", AdapterConfig.houlsby())
    sites = list(iter_sites(model))
    assert len(sites) == 2 * len(blocks) and all(site.channels_first for site in sites)
    assert {site.hidden_size for site in sites} == {b.mlp.fc2.out_channels for b in blocks}
    convolution_blocks = [
        b for stage in model.stages for b in stage.blocks if type(b).__name__ == "MbConvBlock"
    ]
    assert not any(p.requires_grad for b in convolution_blocks for p in b.parameters())


def test_maxvit_window_and_grid_units_form_one_tower_in_execution_order():
    model = _model("timm_maxvit")
    blocks = tower_blocks(model, mma.detect_spec(model).towers["vision"])
    expected = [unit for stage in model.stages for b in stage.blocks for unit in (b.attn_block, b.attn_grid)]
    assert len(blocks) == len(expected) and all(a is b for a, b in zip(blocks, expected, strict=True))
    mma.add_adapter(model, "a", AdapterConfig.houlsby())
    assert not any(site.channels_first for site in iter_sites(model))  # PartitionAttentionCl is channels-last


def test_parallel_on_a_downsampling_block_reads_the_shortcut_output():
    """``shortcut(x) + h + s*A(shortcut(x))``: the residual of a stage's first CoAtNet block is its downsampled,
    widened shortcut, not the block input."""
    model = _model("timm_coatnet")
    mma.add_adapter(model, "a", AdapterConfig.parallel(sites=("attn",)))
    _nonzero(model)
    block = tower_blocks(model, get_state(model).spec.towers["vision"])[0]
    assert block.shortcut.base_layer.__class__.__name__ == "Downsample2d"  # it downsamples
    x = torch.randn(2, block.norm1.norm.normalized_shape[0], 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        residual = block.shortcut.base_layer(x)
        h = block.ls1.base_layer(block.attn(block.norm1(x)))  # the site is the layer scale (see the family)
        adapted = block.ls1.adapters["a"](residual.movedim(1, -1), h.movedim(1, -1)).movedim(-1, 1)
        stream = residual + adapted
        expected = stream + block.ls2(block.mlp(block.norm2(stream)))
        torch.testing.assert_close(block(x), expected, atol=1e-6, rtol=0)
        assert not torch.allclose(adapted, h)  # the adapter did something


def test_sublayer_input_on_an_nchw_block_goes_through_its_layernorm2d():
    """``r + ls2(h + s*A(LN(r)))`` with ``LN`` the block's ``LayerNorm2d``, read channels-last."""
    model = _model("maxvit_nchw")
    mma.add_adapter(model, "a", AdapterConfig.parallel(reads="sublayer_input"))
    _nonzero(model)
    unit = tower_blocks(model, get_state(model).spec.towers["vision"])[0]
    assert type(unit).__name__ == "PartitionAttention2d" and unit.mlp.channels_first
    x = torch.randn(2, unit.norm1.normalized_shape[0], 4, 4, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        stream = x + unit.ls1(unit._partition_attn(unit.norm1(x)))
        normed = unit.norm2.base_layer(stream)
        h = unit.mlp.base_layer(normed)
        adapted = unit.mlp.adapters["a"](normed.movedim(1, -1), h.movedim(1, -1)).movedim(-1, 1)
        torch.testing.assert_close(unit(x), stream + unit.ls2(adapted), atol=1e-6, rtol=0)
        assert not torch.allclose(adapted, h)


def test_pfeiffer_on_a_widening_mvit_block_sums_the_projected_shortcut():
    """MViT with ``expand_attn=False`` widens in the FFN: ``z = proj(norm2(x)) + mlp(norm2(x))``, then ``z + A(z)``;
    the attention there keeps the narrower width (sites have their own widths)."""
    model = _model("timm_mvitv2")
    mma.add_adapter(model, "a", AdapterConfig.pfeiffer())
    mma.add_adapter(model, "h", AdapterConfig.houlsby(), set_active=False)
    block = tower_blocks(model, get_state(model).spec.towers["vision"])[0]
    assert block.dim != block.dim_out and block.shortcut_proj_mlp is not None
    assert (block.attn.hidden_size, block.mlp.hidden_size) == (block.dim, block.dim_out)
    mma.set_active_adapters(model, "a")
    _nonzero(model)
    feat_size = [8, 8]  # 32x32 images, patch stride 4, no class token
    x = torch.randn(2, 64, block.dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        attn_out, _ = block.attn.base_layer(block.norm1(x), feat_size)
        stream = x + attn_out
        normed = block.norm2(stream)
        z = block.shortcut_proj_mlp.base_layer(normed) + block.mlp.base_layer(normed)
        expected = block.mlp.adapters["a"](z, z)
        got, _ = block(x, feat_size)
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
        assert not torch.allclose(expected, z)


@pytest.mark.parametrize(
    "name, config, refused, field",
    [  # test_coatnet's layers 0 and 2 start a stage (downsampling); the expand_attn MViT's layer 1 pools
        (
            "timm_coatnet",
            AdapterConfig.parallel(sites=("attn",), reads="sublayer_input"),
            (0, 2),
            "'shortcut'",
        ),
        ("timm_mvitv2", AdapterConfig.parallel(reads="sublayer_input"), (0,), "'shortcut_proj_mlp'"),
        ("mvitv2_expand_attn", AdapterConfig.parallel(sites=("attn",)), (1,), "'shortcut_pool_attn'"),
        ("mvitv2_expand_attn", AdapterConfig.pfeiffer(sites=("attn",)), (1,), "'shortcut_pool_attn'"),
    ],
)
def test_reads_a_block_cannot_express_are_refused_before_anything_changes(name, config, refused, field):
    model = _model(name)
    with pytest.raises(ValueError, match=rf"layer {refused[0]} .*{field}"):
        mma.add_adapter(model, "a", config)
    assert not list(iter_sites(model))
    # the other layers take it
    count = len(tower_blocks(model, mma.detect_spec(model).towers["vision"]))
    fine = tuple(i for i in range(count) if i not in refused)
    other = _model(name)
    mma.add_adapter(other, "a", dataclasses.replace(config, layers=fine))
    assert sorted(site.layer_index for site in iter_sites(other)) == sorted(fine * len(config.sites))


@pytest.mark.parametrize(
    "name, config",
    [
        ("timm_coatnet", AdapterConfig.parallel(sites=("attn", "ffn"))),  # an output tap on the shortcuts
        ("timm_mvitv2", AdapterConfig.houlsby()),  # sites of different widths
    ],
)
def test_save_and_load_round_trip(name, config, tmp_path):
    model = _model(name)
    mma.add_adapter(model, "a", config)
    _nonzero(model)
    with torch.no_grad():
        expected = _run(model, seed=4)
    mma.save_adapter(model, "a", tmp_path / "a")
    fresh = _model(name)
    mma.load_adapter(fresh, tmp_path / "a")
    with torch.no_grad():
        torch.testing.assert_close(_run(fresh, seed=4), expected, atol=1e-6, rtol=0)
        assert not torch.allclose(_run(_model(name), seed=4), expected)


def test_fuse_on_channels_first_sites():
    model = _model("timm_coatnet")
    with torch.no_grad():
        frozen = _run(model)
    for name in ("a", "b"):
        mma.add_adapter(model, name, AdapterConfig.pfeiffer(sites=("attn", "ffn")))
    fusion = mma.add_fusion(model, ["a", "b"])
    with torch.no_grad():
        torch.testing.assert_close(_run(model), frozen, atol=1e-5, rtol=0)
    _nonzero(model)
    output = _run(model)
    output.square().mean().backward()
    layers = [site.fusions[fusion] for site in iter_sites(model)]
    assert len(layers) == 2 * len(tower_blocks(model, get_state(model).spec.towers["vision"]))
    for layer in layers:  # the query starts at zero, so the keys get their gradient only after a step
        for parameter in (layer.query.weight, layer.value.weight):
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["timm_coatnet", "timm_mvitv2"])
def test_parallel_tasks_equal_running_each_alone(name):
    model = _model(name)
    config = AdapterConfig.parallel(sites=("attn", "ffn"), layers=(0,), init="bert")
    for index, task in enumerate(("a", "b")):
        torch.manual_seed(10 + index)
        mma.add_adapter(model, task, config if name == "timm_coatnet" else AdapterConfig.houlsby(init="bert"))
    _nonzero(model, std=0.3)
    expected = []
    for task in ("a", "b"):
        mma.set_active_adapters(model, task)
        with torch.no_grad():
            expected.append(_run(model))
    mma.set_active_adapters(model, Parallel("a", "b"))
    with torch.no_grad():
        output = _run(model)
    for got, want in zip(output.split(2), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected[0], expected[1])


def test_a_frozen_prefix_is_refused_on_blocks_picked_by_class():
    from mm_adapters.speed.prefix import wrap_frozen_prefix

    model = _model("timm_coatnet")
    mma.add_adapter(model, "a", AdapterConfig.pfeiffer(layers="last:1"))
    with pytest.raises(ValueError, match="no single block list"):
        wrap_frozen_prefix(model)


def test_describe_names_the_block_classes():
    text = mma.describe(copy.deepcopy(_model("timm_coatnet")), show=False)
    assert "TransformerBlock2d" in text and "MbConvBlock" not in text
