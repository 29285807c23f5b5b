"""No adapter is ever skipped: torch's fused fast paths (``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention``
in eval / no_grad / inference_mode read weights without calling the modules that hold them) still run the adapters,
and the automatic spec's check runs on the path real use takes (no hooks on it)."""

import dataclasses
import importlib

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters.specs import auto_spec
from mm_adapters.specs.auto import NoAutoSpec
from mm_adapters.state import iter_sites

MODES = ("train", "eval", "no_grad", "inference_mode")


def _forward(model: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    model.train(mode == "train")
    if mode == "no_grad":
        with torch.no_grad():
            return model(x)
    if mode == "inference_mode":
        with torch.inference_mode():
            return model(x).clone()
    return model(x).detach()


class TorchEncoder(nn.Module):
    """torch's own encoder; in eval its layers take ``torch._transformer_encoder_layer_fwd``."""

    def __init__(self, norm_first: bool) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x):
        return self.encoder(x)


class MhaBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(width), nn.MultiheadAttention(width, 4, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class MhaModel(nn.Module):
    """nn.MultiheadAttention's own fast path (eval, batch_first, even heads, self-attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MhaBlock(32) for _ in range(2))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


MODELS = {
    "transformer_encoder_post_ln": lambda: TorchEncoder(norm_first=False),
    "transformer_encoder_pre_ln": lambda: TorchEncoder(norm_first=True),
    "multihead_attention": MhaModel,
}
CONFIGS = {"houlsby": mma.AdapterConfig.houlsby, "pfeiffer": mma.AdapterConfig.pfeiffer}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_non_zero_adapters_change_the_output_in_every_mode(name, config):
    torch.manual_seed(0)
    model, x = MODELS[name]().eval(), torch.randn(2, 5, 32)
    base = {mode: _forward(model, x, mode) for mode in MODES}
    mma.add_adapter(model, "task", CONFIGS[config](), spec=auto_spec(model, run=lambda m: m(x)))
    for mode in MODES:  # identity at init, in every mode
        torch.testing.assert_close(_forward(model, x, mode), base[mode], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.normal_(std=0.1)
    for mode in MODES:
        difference = (_forward(model, x, mode) - base[mode]).abs().max().item()
        assert difference > 1e-3, f"{mode}: the adapters were skipped"


def test_the_base_model_keeps_its_fast_path_when_no_adapter_runs():
    model, x = TorchEncoder(norm_first=False).eval(), torch.randn(2, 5, 32)
    mma.add_adapter(model, "task", spec=auto_spec(model, run=lambda m: m(x)))
    sites = list(iter_sites(model))
    assert sites and all(len(site._forward_pre_hooks) == 1 for site in sites)
    mma.set_active_adapters(model, None)
    assert all(len(site._forward_pre_hooks) == 0 for site in sites)
    mma.set_active_adapters(model, "task")
    assert all(len(site._forward_pre_hooks) == 1 for site in sites)


def test_the_automatic_check_fails_when_probes_are_skipped_on_the_real_path(monkeypatch):
    """Probes that do not hold the fused parent off its fast path are skipped in eval: the check must see it (a
    hook-based check would switch the fast path off and pass)."""
    model, x = TorchEncoder(norm_first=False).eval(), torch.randn(2, 5, 32)
    verify_module = importlib.import_module("mm_adapters.specs.auto.verify")
    monkeypatch.setattr(verify_module, "hold_parents_off_fused_paths", lambda module, hold: None)
    with pytest.raises(NoAutoSpec, match="never called in eval under no_grad"):
        auto_spec(model, run=lambda m: m(x))


def test_a_site_inside_multihead_attention_is_refused():
    model, x = MhaModel().eval(), torch.randn(2, 5, 32)
    spec = auto_spec(model, run=lambda m: m(x))
    tower = spec.towers["blocks"]
    spec.towers["blocks"] = dataclasses.replace(
        tower, attn=dataclasses.replace(tower.attn, output="attn.out_proj")
    )
    with pytest.raises(ValueError, match="reads its weights without calling it"):
        mma.add_adapter(model, "task", mma.AdapterConfig.houlsby(), spec=spec)
    assert not list(iter_sites(model))
