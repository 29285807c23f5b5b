"""The Hugging Face specs fit the installed transformers (the project runs on 5.x; `make bench` runs this file on
4.57.x, the version AdapterHub needs): every path resolves and every adapter site runs."""

from __future__ import annotations

import pytest
import torch
import transformers

from mm_adapters import AdapterConfig, AdapterSite, InputTap, add_adapter, detect_spec
from mm_adapters.specs import resolve_parent, resolve_path

from tiny_backbones import FACTORIES

HF_FAMILIES = ["hf_bert", "hf_vit", "hf_clip", "hf_wav2vec2", "hf_hubert", "hf_wavlm"]
MAJOR = int(transformers.__version__.split(".")[0])


@pytest.mark.parametrize("family", HF_FAMILIES)
def test_every_spec_path_resolves_on_every_layer(family):
    model = FACTORIES[family](0).model
    spec = detect_spec(model)
    for tower in spec.towers.values():
        layers = resolve_path(model, tower.layers)
        assert len(layers) == 2
        for layer in layers:
            for site in (tower.attn, tower.ffn):
                assert isinstance(resolve_path(layer, site.output), torch.nn.Module)
                if site.input:
                    assert isinstance(resolve_path(layer, site.input), torch.nn.Module)
            assert resolve_path(layer, tower.hidden_size) == 32


def test_vit_layout_matches_the_installed_version():
    model = FACTORIES["hf_vit"](0).model
    tower = detect_spec(model).towers["vision"]
    layer = resolve_path(model, tower.layers)[0]
    parent, child = resolve_parent(layer, tower.ffn.output)
    if MAJOR >= 5:
        assert hasattr(model, "layers") and (parent, child) == (layer, "mlp")
    else:
        assert hasattr(model.encoder, "layer") and (parent, child) == (layer.output, "dense")


@pytest.mark.parametrize("family", HF_FAMILIES)
@pytest.mark.parametrize("preset", ["houlsby", "parallel"])
def test_every_site_and_tap_runs_and_changes_the_output(family, preset):
    tiny = FACTORIES[family](0)
    frozen = FACTORIES[family](0).model.requires_grad_(False)
    batch = tiny.make_batch(0)
    add_adapter(tiny.model, "a", AdapterConfig.preset(preset))
    torch.testing.assert_close(tiny.run(tiny.model, batch), tiny.run(frozen, batch), rtol=0, atol=1e-5)

    wrappers = [m for m in tiny.model.modules() if isinstance(m, (AdapterSite, InputTap))]
    sites = [m for m in wrappers if isinstance(m, AdapterSite)]
    towers = len(detect_spec(tiny.model).towers)
    assert len(sites) == towers * 2 * len(AdapterConfig.preset(preset).sites)
    calls = {id(m): 0 for m in wrappers}
    for module in wrappers:
        module.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls[id(m)] + 1))
    with torch.no_grad():
        for param in tiny.model.parameters():
            if param.requires_grad:
                param.normal_(std=0.2)
    out = tiny.run(tiny.model, batch)
    assert all(count == 1 for count in calls.values())
    assert not torch.allclose(out, tiny.run(frozen, batch), atol=1e-3)
