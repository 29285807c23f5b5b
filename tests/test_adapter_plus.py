"""Adapter+ (``AdapterConfig.adapter_plus()``, AdapterHub's AdapterPlusConfig): the math on every core family, its
learned per-channel scaling, stochastic depth and initialisation. AdapterHub parity is in test_adapterhub_interop.py
(peer environment) and test_adapterhub_fixtures.py."""

import pytest
import torch
import torch.nn.functional as F

import mm_adapters as mma
from mm_adapters import AdapterConfig
from mm_adapters.layers import BottleneckAdapter
from mm_adapters.specs import tower_blocks

from tiny_backbones import ALL_FACTORIES, FACTORIES

# Conformer blocks end with a LayerNorm after a half-step FFN (``LN(r + h/2)``): no site reads the block's output there
BLOCK_OUTPUT_FAMILIES = sorted(set(ALL_FACTORIES) - {"hf_wav2vec2_conformer"})


def _first_tower(model) -> str:
    return next(iter(mma.detect_spec(model).towers))


def _first_block(model):
    return tower_blocks(model, mma.detect_spec(model).towers[_first_tower(model)])[0]


def _block_output(tiny, batch) -> torch.Tensor:
    captured = []

    def keep(module, args, out):
        captured.append((out[0] if isinstance(out, tuple) else out).detach().clone())

    handle = _first_block(tiny.model).register_forward_hook(keep)
    with torch.no_grad():
        tiny.run(tiny.model, batch)
    handle.remove()
    return captured[0]


@pytest.mark.parametrize("family", BLOCK_OUTPUT_FAMILIES)
def test_adapter_plus_adds_its_scaled_output_to_the_block_output(family):
    """``y + s * up(gelu(down(y)))`` with ``y`` what the block outputs without the adapter (``LN(h + x)`` on post-LN
    blocks, ``h + x`` on pre-LN and res-post-norm ones), on every family's example, timm included."""
    tiny = ALL_FACTORIES[family](0)
    tiny.model.requires_grad_(False)
    batch = tiny.make_batch(0)
    plain = _block_output(tiny, batch)
    config = AdapterConfig.adapter_plus(reduction_factor=4, layers=(0,), towers=(_first_tower(tiny.model),))
    mma.add_adapter(tiny.model, "plus", config)
    site = next(s for s in tiny.model.modules() if isinstance(s, mma.AdapterSite) and "plus" in s.adapters)
    adapter = site.adapters["plus"]
    with torch.no_grad():
        adapter.scale.weight.copy_(torch.rand_like(adapter.scale.weight) + 0.5)
        adapter.up.weight.mul_(50)  # trunc-normal(0.01) weights barely move a tiny model
    adapted = _block_output(tiny, batch)
    down, up, scale = adapter.down, adapter.up, adapter.scale.weight
    y = plain.movedim(1, -1) if site.channels_first else plain  # NCHW blocks: channels are dim 1
    expected = y + scale * F.linear(F.gelu(F.linear(y, down.weight, down.bias)), up.weight, up.bias)
    expected = expected.movedim(-1, 1) if site.channels_first else expected
    assert (adapted - plain).abs().max() > 1e-3
    torch.testing.assert_close(adapted, expected, rtol=1e-5, atol=1e-5)


def test_adapter_plus_is_adapterhubs_adapter_plus_config():
    config = AdapterConfig.adapter_plus()
    assert (config.sites, config.mode, config.reads) == (("ffn",), "sequential", "block_output")
    assert (config.activation, config.reduction_factor, config.scaling) == ("gelu", 96, "channel")
    assert (config.drop_path, config.init, config.dropout) == (0.1, "trunc_normal", 0.0)
    assert AdapterConfig.preset("adapter_plus") == config
    assert AdapterConfig.from_dict(config.to_dict()) == config


def test_trunc_normal_init_and_channel_scale_start():
    adapter = BottleneckAdapter(768, AdapterConfig.adapter_plus())
    for linear in (adapter.down, adapter.up):
        assert linear.weight.abs().max() <= 0.02 and torch.count_nonzero(linear.bias) == 0
        # N(0, 0.01) truncated at two standard deviations has a standard deviation of 0.0088
        assert 0.008 < linear.weight.std() < 0.0096
    assert adapter.down.out_features == 8 and torch.equal(adapter.scale.weight, torch.ones(768))


def test_drop_path_drops_whole_samples_while_training_only():
    torch.manual_seed(0)
    adapter = BottleneckAdapter(16, AdapterConfig.adapter_plus(bottleneck_dim=4, drop_path=0.5))
    x = torch.randn(200, 3, 16)
    adapter.eval()
    full = adapter(x)
    adapter.train()
    dropped = adapter(x)
    kept = dropped.flatten(1).abs().sum(1) > 0
    torch.testing.assert_close(dropped[kept], 2 * full[kept])  # the kept samples are scaled by 1 / (1 - p)
    assert torch.count_nonzero(dropped[~kept]) == 0
    assert 60 < int(kept.sum()) < 140


def test_new_adapters_follow_the_models_training_mode():
    tiny = FACTORIES["hf_bert"](0)
    mma.add_adapter(tiny.model, "plus", AdapterConfig.adapter_plus())
    assert not any(m.training for m in tiny.model.modules())
    tiny.model.train()
    mma.add_adapter(tiny.model, "plus2", AdapterConfig.adapter_plus())
    assert all(m.training for m in tiny.model.modules())


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"scaling": "vector"}, "scaling"),
        ({"drop_path": 1.0}, "drop_path"),
        ({"drop_path": -0.1}, "drop_path"),
        ({"init": "houlsby"}, "init"),
        ({"mode": "parallel"}, "reads"),
    ],
)
def test_bad_adapter_plus_fields_are_refused_by_name(overrides, message):
    with pytest.raises(ValueError, match=message):
        AdapterConfig.adapter_plus(**overrides)


def test_block_output_adapter_on_a_post_ln_block_is_refused_in_a_fusion():
    tiny = FACTORIES["hf_bert"](0)
    for name in ("a", "b"):
        mma.add_adapter(tiny.model, name, AdapterConfig.adapter_plus(), set_active=False)
    mma.add_fusion(tiny.model, ["a", "b"], "a_b")
    mma.set_active_adapters(tiny.model, mma.Fuse("a", "b", name="a_b"))
    with pytest.raises(RuntimeError, match="block_output"):
        tiny.run(tiny.model, tiny.make_batch(0))


def test_stacked_after_pfeiffer_and_removed_again_on_a_post_ln_block():
    tiny = FACTORIES["hf_bert"](0)
    batch = tiny.make_batch(0)
    mma.add_adapter(tiny.model, "pf", AdapterConfig.pfeiffer(init="bert"))
    with torch.no_grad():
        pfeiffer_only = tiny.run(tiny.model, batch)
    mma.add_adapter(tiny.model, "plus", AdapterConfig.adapter_plus(init="bert"), set_active=False)
    mma.set_active_adapters(tiny.model, ["pf", "plus"])
    with torch.no_grad():
        assert (tiny.run(tiny.model, batch) - pfeiffer_only).abs().max() > 1e-4
    mma.delete_adapter(tiny.model, "plus")
    assert not any(type(m).__name__ == "BlockOutputSite" for m in tiny.model.modules())
    mma.set_active_adapters(tiny.model, "pf")
    with torch.no_grad():
        torch.testing.assert_close(tiny.run(tiny.model, batch), pfeiffer_only, rtol=0, atol=0)


def test_recipes_accept_adapter_plus_as_a_placement(tmp_path):
    """bert_text on the demo BERT (post-LN: the adapter runs after the block's LayerNorm) trains with stochastic
    depth and exports Adapter+ with the runner's reduction factor (which, as for every placement, replaces the
    preset's)."""
    import importlib
    import json

    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"preset: demo\nmax_steps: 2\nbatch_size: 4\nlimit_val_batches: 2\noutput_dir: {tmp_path}\n"
    )
    recipe = importlib.import_module("recipes.bert_text")
    argv = ["--config", str(config), "--backbone", "demo-bert", "--placement", "adapter_plus"]
    report = recipe.main([*argv, "--reduction-factor", "8"])
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["config"]
    assert (saved["reads"], saved["scaling"], saved["drop_path"]) == ("block_output", "channel", 0.1)
    assert saved["reduction_factor"] == 8 and report["steps"] == 2
    assert report["trainable_params"] == 2 * (2 * 16 * 128 + 16 + 128 + 128) + 128 * 2 + 2  # adapters + head
