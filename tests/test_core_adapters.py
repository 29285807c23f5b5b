"""Behaviour every backbone family x placement preset must have."""

from collections import Counter

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig, AdapterSite, InputTap

from tiny_backbones import FACTORIES, HIDDEN, LAYERS

PRESETS = ["houlsby", "pfeiffer", "parallel", "adapter_plus"]
CASES = [(family, preset) for family in FACTORIES for preset in PRESETS]


def _frozen(family: str, seed: int = 0):
    tiny = FACTORIES[family](seed)
    tiny.model.requires_grad_(
        False
    )  # freezing can change kernel choice (MHA fast path): compare like with like
    return tiny


def _num_towers(model) -> int:
    return len(mma.detect_spec(model).towers)


@pytest.mark.parametrize("family,preset", CASES)
def test_adapted_model_equals_base_at_init(family, preset):
    tiny = _frozen(family)
    batch = tiny.make_batch(0)
    with torch.no_grad():
        expected = tiny.run(tiny.model, batch)
    # adapter_plus starts from trunc-normal weights, like AdapterHub's; every preset is the identity with init="zero"
    mma.add_adapter(tiny.model, "task", AdapterConfig.preset(preset, init="zero"))
    with torch.no_grad():
        actual = tiny.run(tiny.model, batch)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("family,preset", CASES)
def test_every_site_is_called(family, preset):
    tiny = FACTORIES[family](0)
    config = AdapterConfig.preset(preset)
    mma.add_adapter(tiny.model, "task", config)
    sites = [m for m in tiny.model.modules() if isinstance(m, AdapterSite)]
    assert len(sites) == _num_towers(tiny.model) * LAYERS * len(config.sites)
    calls = Counter()

    def count(module, *_):
        calls[module] += 1

    for site in sites:
        site.register_forward_hook(count)
        site.adapters["task"].register_forward_hook(count)
    taps = [m for m in tiny.model.modules() if isinstance(m, InputTap)]
    with torch.no_grad():
        tiny.run(tiny.model, tiny.make_batch(0))
    assert all(calls[site] >= 1 for site in sites), "a wrapped sublayer was not called"
    assert all(calls[site.adapters["task"]] >= 1 for site in sites), "an adapter was not called"
    assert all(tap.captured is None for tap in taps), "a tapped input was left behind after the forward pass"


@pytest.mark.parametrize("family,preset", CASES)
def test_training_changes_only_adapter_parameters(family, preset):
    tiny = FACTORIES[family](0)
    base_before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    # bottleneck 8: with hidden 32 and rf 16 the two ReLU units can both start dead on a tiny random model
    mma.add_adapter(tiny.model, "task", AdapterConfig.preset(preset, reduction_factor=4))
    trainable = {n: p.detach().clone() for n, p in tiny.model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapters.task." in n for n in trainable)
    optimizer = torch.optim.AdamW([p for p in tiny.model.parameters() if p.requires_grad], lr=1e-2)
    for step in range(3):
        optimizer.zero_grad()
        out = tiny.run(tiny.model, tiny.make_batch(step))
        target = torch.randn(out.shape, generator=torch.Generator().manual_seed(step))
        (out - target).pow(2).mean().backward()
        optimizer.step()
    changed = [
        n for n, p in tiny.model.named_parameters() if p.requires_grad and not torch.equal(p, trainable[n])
    ]
    assert any(n.endswith("up.weight") for n in changed) and any(n.endswith("down.weight") for n in changed)
    mma.delete_adapter(tiny.model, "task")  # unwraps: the state_dict keys are the original ones again
    after = tiny.model.state_dict()
    assert after.keys() == base_before.keys()
    for key, tensor in base_before.items():
        assert torch.equal(after[key], tensor), f"base parameter {key} changed"


@pytest.mark.parametrize("family,preset", CASES)
def test_save_load_round_trip_into_fresh_model(family, preset, tmp_path):
    tiny = FACTORIES[family](0)
    mma.add_adapter(tiny.model, "task", AdapterConfig.preset(preset))
    with torch.no_grad():
        for parameter in tiny.model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    batch = tiny.make_batch(1)
    with torch.no_grad():
        expected = tiny.run(tiny.model, batch)
    mma.save_adapter(tiny.model, "task", tmp_path / "task")

    fresh = FACTORIES[family](0)
    torch.manual_seed(1234)  # the fresh adapter starts from different random weights
    assert mma.load_adapter(fresh.model, tmp_path / "task") == "task"
    with torch.no_grad():
        actual = fresh.run(fresh.model, batch)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    size = (tmp_path / "task" / "adapter_model.safetensors").stat().st_size
    assert size < sum(p.numel() for p in fresh.model.parameters()) * 4 / 2, "the backbone must not be saved"


@pytest.mark.parametrize("family,preset", CASES)
def test_trainable_parameter_count(family, preset):
    tiny = FACTORIES[family](0)
    config = AdapterConfig.preset(preset)
    total_before = mma.count_parameters(tiny.model).total
    mma.add_adapter(tiny.model, "task", config)
    d, r = HIDDEN, config.bottleneck_size(HIDDEN)
    sites = _num_towers(tiny.model) * LAYERS * len(config.sites)
    counts = mma.count_parameters(tiny.model)
    channel_scale = d if config.scaling == "channel" else 0
    assert counts.trainable == sites * (2 * r * d + r + d + channel_scale)
    assert counts.total == total_before + counts.trainable


@pytest.mark.parametrize("family", list(FACTORIES))
def test_bf16_autocast_with_fp32_adapter_weights(family):
    tiny = FACTORIES[family](0)
    mma.add_adapter(tiny.model, "task", AdapterConfig.houlsby())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = tiny.run(tiny.model, tiny.make_batch(0)).float().pow(2).mean()
    loss.backward()
    adapter_params = [p for p in tiny.model.parameters() if p.requires_grad]
    assert torch.isfinite(loss)
    assert all(
        p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
        for p in adapter_params
    )


def test_torch_compile_of_an_adapted_model_runs():
    tiny = _frozen("timm_vit")
    batch = tiny.make_batch(0)
    mma.add_adapter(tiny.model, "task", AdapterConfig.houlsby())
    with torch.no_grad():
        for parameter in tiny.model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05)
        eager = tiny.run(tiny.model, batch)
    compiled = torch.compile(tiny.model)
    with torch.no_grad():
        out = tiny.run(compiled, batch)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)
