"""The automatic spec on convolutional-hybrid layouts (timm models, shrunk as the coverage sweep builds them):
NCHW blocks whose sublayers are convolutions (FastViT, LeViT-conv), transformer blocks picked by class out of mixed
stages (EfficientFormer, NextViT), a token attention of another layout and width than its NCHW block (NextViT), an
attention-free token mixer (Sequencer's LSTM), and a block whose FFN residual no tap can see (EdgeNeXt: refused)."""

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig
from mm_adapters.coverage import Result, check_model
from mm_adapters.specs import detect_spec, tower_blocks
from mm_adapters.state import iter_sites

pytestmark = pytest.mark.usefixtures("quiet_auto_spec")


@pytest.fixture
def built(sweep_timm):
    return sweep_timm


KNOWN_HALF_ADAPTED = {"levit_128", "levit_conv_192", "nextvit_small"}


@pytest.mark.parametrize(
    "name", ["fastvit_sa24", "levit_conv_192", "efficientformer_l1", "efficientformerv2_s0", "nextvit_small"]
)
def test_every_preset_works_with_no_spec(built, name):
    model, run = built(name)
    result = check_model(model, run, Result("timm", name))
    # the sweep's block finder (issue 18) sees blocks these specs leave unadapted with no note: LeViT's attention
    # downsamplers, NextViT's conv-attention blocks under Pfeiffer; every other check passes for them
    assert result.ok or (name in KNOWN_HALF_ADAPTED and result.half_adapted), result.error
    assert result.family.startswith("auto:")


def test_nchw_blocks_get_channels_first_sites_at_their_conv_width(built):
    model, run = built("fastvit_sa24")
    spec = detect_spec(model)
    attention_stage = [
        t for t in spec.towers.values() if type(tower_blocks(model, t)[0]).__name__ == "AttentionBlock"
    ]
    assert len(attention_stage) == 1
    tower = attention_stage[0]
    assert tower.channels_first and tower.ffn.hidden_size.endswith("out_channels")
    assert (
        tower.ffn.reads_stream and tower.attn.norm
    )  # the ConvMlp normalises inside; the attention has a norm
    mma.add_adapter(model, "a", AdapterConfig.pfeiffer())
    widths = {site.hidden_size for site in iter_sites(model) if site.channels_first}
    block = tower_blocks(model, tower)[0]
    assert block.mlp.base_layer.fc2.out_channels in widths
    with torch.no_grad():
        assert run(model).isfinite().all()


def test_mixed_stages_pick_the_transformer_blocks_by_class(built):
    model, _ = built("nextvit_small")
    spec = detect_spec(model)
    picked = [t for t in spec.towers.values() if t.block_types]
    assert [t.block_types for t in picked] == [("NextTransformerBlock",)]
    blocks = tower_blocks(model, picked[0])
    assert blocks and all(type(b).__name__ == "NextTransformerBlock" for b in blocks)
    # its token attention returns (B, N, C) inside an NCHW block: that site is channels-last, at the attention's width
    assert picked[0].attn.channels_first is False and picked[0].ffn.channels_first is True
    assert picked[0].attn.hidden_size == "e_mhsa.proj.out_features"


def test_an_attention_free_token_mixer_is_the_attention_site(built):
    model, run = built("sequencer2d_s")
    spec = detect_spec(model)
    (tower,) = spec.towers.values()
    assert tower.attn.output == "rnn_tokens" and tower.ffn.output == "mlp_channels"
    assert check_model(model, run, Result("timm", "sequencer2d_s")).ok


def test_a_block_whose_ffn_residual_is_not_its_stream_refuses_stream_placements(built):
    model, run = built("edgenext_small")
    with pytest.raises(ValueError, match="automatic spec .* found no tap that carries the residual"):
        mma.add_adapter(model, "p", AdapterConfig.pfeiffer())
    assert not list(iter_sites(model))  # refused before anything was wrapped
    mma.add_adapter(model, "h", AdapterConfig.houlsby())  # reads the sublayer outputs only: fine
    with torch.no_grad():
        assert run(model).isfinite().all()


def test_inspect_names_an_unknown_model_and_the_accepted_forms(monkeypatch):
    from mm_adapters import inspect as inspect_command

    monkeypatch.setattr("sys.argv", ["inspect", "timm:no_such_model"])
    with pytest.raises(
        SystemExit, match=r"Cannot build 'timm:no_such_model'.*timm:NAME.*open_clip:NAME.*hf:MODEL_TYPE"
    ):
        inspect_command.main()


def test_describe_shows_the_layout_of_nchw_sites(built):
    model, _ = built("fastvit_sa24")
    text = mma.describe(model, show=False)
    assert "channels first (NCHW)" in text and "reads the stream itself" in text


def test_adds_inside_a_sublayer_are_not_sites(built):
    """EfficientFormer-V2's attention adds its own biases at the block's width: the residual chain skips them."""
    model, _ = built("efficientformerv2_s0")
    spec = detect_spec(model)
    assert {t.attn.output for t in spec.towers.values()} == {"token_mixer"}
    assert {t.ffn.output for t in spec.towers.values()} == {"mlp"}
