"""The automatic spec on block layouts no family entry describes (timm models, shrunk as the coverage sweep builds
them): LeViT's res-post blocks with no norm, TinyViT's norms inside its sublayers, DaViT's (spatial, channel) block
pairs, MobileViT's transformers inside some stages only. Each passes the sweep's check (all three presets with no
``spec=``: identity at init, gradients only in the adapters, Houlsby in every layer of every tower)."""

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters import AdapterConfig
from mm_adapters.coverage import Result, check_model
from mm_adapters.specs import tower_blocks
from mm_adapters.state import get_state, iter_sites

pytestmark = pytest.mark.usefixtures("quiet_auto_spec")


@pytest.fixture
def built(sweep_timm):
    return sweep_timm


def _towers(model: nn.Module) -> dict[str, tuple[str, list[str], str | None, tuple]]:
    """Per tower: its layers pattern, its block classes, its norm position and its sites' norms."""
    spec = mma.detect_spec(model)
    assert spec.family == f"auto:{type(model).__name__}" and not spec.notes
    found = {}
    for name, tower in spec.towers.items():
        blocks = tower_blocks(model, tower)
        positions = {tower.norm_position_of(block) for block in blocks}
        assert len(positions) == 1
        found[name] = (
            tower.layers,
            [type(block).__name__ for block in blocks],
            positions.pop(),
            (tower.attn.norm, tower.ffn.norm),
        )
    return found


KNOWN_HALF_ADAPTED = {"levit_128", "levit_conv_192", "nextvit_small"}


@pytest.mark.parametrize("name", ["levit_128", "tiny_vit_5m_224", "davit_base", "mobilevit_xxs"])
def test_the_automatic_spec_passes_every_preset(name, built):
    model, run = built(name)
    result = check_model(model, run, Result("timm", name))
    # the sweep's block finder (issue 18) sees blocks these specs leave unadapted with no note: LeViT's attention
    # downsamplers, NextViT's conv-attention blocks under Pfeiffer; every other check passes for them
    assert result.ok or (name in KNOWN_HALF_ADAPTED and result.half_adapted), result.error
    assert result.family == f"auto:{type(model).__name__}"
    assert result.towers and all(count > 0 for count in result.towers.values())


def test_levit_blocks_are_res_post_with_no_norm_in_one_tower(built):
    model, _ = built("levit_128")
    ((layers, classes, position, norms),) = _towers(model).values()
    assert layers == "stages.*.blocks"  # the stages' lists with the same sites, merged in order
    assert classes == ["LevitBlock"] * sum(len(stage.blocks) for stage in model.stages)
    assert (position, norms) == ("res_post", (None, None))
    text = mma.describe(model, show=False)
    assert "norm res_post" in text and "attn: attn (Attention), input attn" in text


def test_levit_block_output_is_the_res_post_table_with_no_norm(built):
    """``x + f(x)``: Pfeiffer on both sublayers gives ``z + A(z)``, ``z = x + f(x)``, each; the stream is the
    sublayer's input (LeViT's attention reads every token, so the attention site may read it too)."""
    model, run = built("levit_128")
    mma.add_adapter(model, "a", AdapterConfig.pfeiffer(sites=("attn", "ffn")))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for site in iter_sites(model):
            site.adapters["a"].up.weight.copy_(
                0.1 * torch.randn(site.adapters["a"].up.weight.shape, generator=generator)
            )
            site.adapters["a"].down.bias.fill_(0.1)
    blocks = tower_blocks(model, next(iter(get_state(model).spec.towers.values())))
    seen = {}
    handles = [
        block.register_forward_hook(lambda m, args, out: seen.__setitem__(id(m), (args[0].clone(), out)))
        for block in blocks
    ]
    with torch.no_grad():
        run(model)
        for handle in handles:
            handle.remove()

        def pfeiffer(site, x):
            z = x + site.base_layer(x)
            adapter = site.adapters["a"]
            return z + adapter.up(adapter.act(adapter.down(z)))

        for block in blocks:
            x, got = seen[id(block)]
            expected = pfeiffer(block.mlp, pfeiffer(block.attn, x))
            torch.testing.assert_close(got, expected, atol=2e-6, rtol=0)
            assert (expected - (x + block.attn.base_layer(x))).abs().max() > 1e-3


def test_tinyvit_norms_inside_the_sublayers_make_it_res_post_and_leave_the_conv_stage_out(built):
    """TinyViT normalises inside its attention and ``NormMlp``: nothing normalises the stream, so its blocks are
    res-post with no site norm (not "unknown"). Stage 0 is convolutional: ``stages.*.blocks`` would take its
    blocks too, so the transformer stages stay separate towers."""
    model, _ = built("tiny_vit_5m_224")
    towers = _towers(model)
    transformer_stages = [
        i for i, stage in enumerate(model.stages) if type(stage.blocks[0]).__name__ == "TinyVitBlock"
    ]
    assert transformer_stages == [1, 2, 3]
    assert sorted(layers for layers, *_ in towers.values()) == [
        f"stages.{i}.blocks" for i in transformer_stages
    ]
    for _, classes, position, norms in towers.values():
        assert set(classes) == {"TinyVitBlock"} and (position, norms) == ("res_post", (None, None))
    mma.add_adapter(model, "a", AdapterConfig.houlsby())
    assert not any(p.requires_grad for p in model.stages[0].parameters())  # the conv stage is left alone
    assert len(list(iter_sites(model))) == 2 * sum(len(model.stages[i].blocks) for i in transformer_stages)


def test_davit_pairs_become_a_spatial_and_a_channel_tower(built):
    model, _ = built("davit_base")
    towers = sorted(_towers(model).values())
    count = sum(len(stage.blocks) for stage in model.stages)
    assert [(layers, set(classes), len(classes)) for layers, classes, _, _ in towers] == [
        ("stages.*.blocks.*.0", {"SpatialBlock"}, count),
        ("stages.*.blocks.*.1", {"ChannelBlock"}, count),
    ]
    assert all((position, norms) == ("pre", ("norm1", "norm2")) for _, _, position, norms in towers)
    spec = mma.detect_spec(model)
    first = [tower_blocks(model, tower)[0] for tower in spec.towers.values()]
    assert {id(block) for block in first} == {
        id(model.stages[0].blocks[0][0]),
        id(model.stages[0].blocks[0][1]),
    }


def test_mobilevit_stage_patterns_that_miss_stages_are_not_merged(built):
    """Only stages 2-4 hold a transformer (``stages.N.1.transformer``); ``stages.*.1.transformer`` does not resolve
    on the others, so each stays its own tower rather than a pattern that names stages without one."""
    model, _ = built("mobilevit_xxs")
    towers = _towers(model)
    with_transformer = [
        i for i, stage in enumerate(model.stages) if len(stage) > 1 and hasattr(stage[1], "transformer")
    ]
    assert with_transformer == [2, 3, 4] and len(model.stages) == 5
    assert sorted(layers for layers, *_ in towers.values()) == [
        f"stages.{i}.1.transformer" for i in with_transformer
    ]
    for layers, classes, position, norms in towers.values():
        stage = int(layers.split(".")[1])
        assert len(classes) == len(model.stages[stage][1].transformer)
        assert (position, norms) == ("pre", ("norm1", "norm2"))
