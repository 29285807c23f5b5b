"""The automatic spec: found by tracing, equal to the hand-written family specs, checked, and refused clearly."""

import logging

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters.specs import auto_spec, find_towers
from mm_adapters.state import iter_sites

from tiny_backbones import ALL_FACTORIES


@pytest.mark.parametrize("name", ["hf_bert", "hf_wav2vec2", "hf_wav2vec2_conformer", "hf_swin", "timm_vit"])
def test_traced_sites_and_norms_match_the_hand_written_family_spec(name):
    tiny = ALL_FACTORIES[name](0)
    batch = tiny.make_batch(0)
    traced = find_towers(tiny.model, lambda m: tiny.run(m, batch))
    (tower,) = traced.values()
    (registered,) = mma.detect_spec(tiny.model).towers.values()
    assert tower.layers in registered.layers.split("|")
    block = mma.specs.resolve_path(tiny.model, tower.layers)[0]
    for found, expected in ((tower.attn, registered.attn), (tower.ffn, registered.ffn)):
        assert mma.specs.resolve_path(block, found.output) is mma.specs.resolve_path(block, expected.output)
        assert mma.specs.resolve_path(block, found.norm) is mma.specs.resolve_path(block, expected.norm)
    assert tower.norm_position == registered.norm_position_of(block)


class _Block(nn.Module):
    """A pre-LN block written with nn.MultiheadAttention, whose out_proj a fused kernel calls outside the module."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.ln_a, self.mix = nn.LayerNorm(width), nn.MultiheadAttention(width, 2, batch_first=True)
        self.ln_f = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        h = self.ln_a(x)
        x = x + self.mix(h, h, h, need_weights=False)[0]
        return x + self.ff(self.ln_f(x))


class _Unregistered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.stack = nn.ModuleList(_Block(16) for _ in range(3))

    def forward(self, x):
        x = self.embed(x)
        for block in self.stack:
            x = block(x)
        return x


def test_a_model_nobody_registered_gets_a_checked_automatic_spec(caplog):
    torch.manual_seed(0)
    model, x = _Unregistered().eval(), torch.randn(2, 5, 6)
    with caplog.at_level(logging.WARNING, logger="mm_adapters"):
        spec = auto_spec(model, run=lambda m: m(x))
    assert "automatic spec for _Unregistered" in caplog.text and "stack" in caplog.text
    (tower,) = spec.towers.values()
    assert (tower.layers, tower.attn.output, tower.ffn.output) == ("stack", "mix", "ff")
    assert (tower.attn.norm, tower.ffn.norm, tower.norm_position) == ("ln_a", "ln_f", "pre")
    with torch.no_grad():
        frozen = model(x)
    mma.add_adapter(model, "a", mma.AdapterConfig.houlsby(), spec=spec)
    mma.add_adapter(model, "p", mma.AdapterConfig.pfeiffer(), spec=spec, set_active=False)  # needs the norms
    with torch.no_grad():
        torch.testing.assert_close(model(x), frozen)
    assert {(s.layer_index, s.site) for s in iter_sites(model)} == {
        (i, k) for i in range(3) for k in ("attn", "ffn")
    }


def test_a_model_without_attention_blocks_is_refused_with_what_was_found():
    model = nn.Sequential(*(nn.Sequential(nn.Linear(4, 4), nn.ReLU()) for _ in range(2)))
    with pytest.raises(ValueError, match="found nothing, but no block list with an attention"):
        auto_spec(model, run=lambda m: m(torch.randn(2, 4)))
    with pytest.raises(ValueError, match="found nothing, but no block list with an attention"):
        mma.add_adapter(model, "a")  # its input is built from its first Linear: the same refusal


def test_describe_prints_the_spec(capsys):
    tiny = ALL_FACTORIES["hf_swin"](0)
    text = mma.describe(tiny.model)
    assert "encoder.layers.*.blocks (2 x SwinLayer, hidden 16/32, norm pre)" in text
    assert "attn: attention (SwinAttention), norm layernorm_before" in text
    assert capsys.readouterr().out.strip() == text
