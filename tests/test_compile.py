"""torch.compile traces adapted models without graph breaks, and compiled training matches eager training."""

from __future__ import annotations

import copy

import pytest
import torch

from mm_adapters import AdapterConfig, add_adapter
from mm_adapters.speed import (
    PrefixCache,
    adapter_graph_breaks,
    cast_frozen,
    graph_break_reasons,
    wrap_frozen_prefix,
)

from tiny_backbones import FACTORIES


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize(
    "family, preset",
    [("hf_bert", "parallel"), ("hf_vit", "houlsby"), ("timm_vit", "pfeiffer"), ("hf_wav2vec2", "parallel")],
)
def test_adapted_model_compiles_without_graph_breaks(family, preset):
    tiny = FACTORIES[family](0)
    add_adapter(tiny.model, "a", AdapterConfig.preset(preset))
    batch = tiny.make_batch(0)
    assert graph_break_reasons(lambda: tiny.run(tiny.model, batch)) == []


def test_frozen_prefix_runner_compiles_without_graph_breaks():
    tiny = FACTORIES["hf_bert"](0)
    add_adapter(tiny.model, "a", AdapterConfig.pfeiffer(layers="last:1"))
    wrap_frozen_prefix(tiny.model)
    batch = tiny.make_batch(0)
    assert adapter_graph_breaks(lambda: tiny.run(tiny.model, batch)) == []


def test_compiled_training_step_matches_eager():
    tiny = FACTORIES["hf_vit"](0)
    add_adapter(tiny.model, "a", AdapterConfig.houlsby())
    with torch.no_grad():
        for param in tiny.model.parameters():
            if param.requires_grad:
                param.normal_(std=0.2)
    eager_model = copy.deepcopy(tiny.model)
    compiled = torch.compile(tiny.model, backend="aot_eager", fullgraph=True)
    batch = tiny.make_batch(0)
    weights = torch.randn_like(tiny.run(eager_model, batch))
    (tiny.run(compiled, batch) * weights).sum().backward()
    (tiny.run(eager_model, batch) * weights).sum().backward()
    trained = {n: p.grad for n, p in tiny.model.named_parameters() if p.requires_grad}
    expected = {n: p.grad for n, p in eager_model.named_parameters() if p.requires_grad}
    assert trained.keys() == expected.keys() and len(trained) == 16  # 2 layers x 2 sites x 4 tensors
    for name in expected:
        torch.testing.assert_close(trained[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_prefix_cache_does_not_recompile_for_every_batch():
    tiny = FACTORIES["hf_bert"](0)
    add_adapter(tiny.model, "a", AdapterConfig.pfeiffer(layers="last:1"))
    cache = PrefixCache().attach(tiny.model)
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    compiled = torch.compile(tiny.model, backend=counting_backend)
    batch = tiny.make_batch(0)
    expected = tiny.run(tiny.model, batch)
    for epoch in range(3):
        for step in range(4):
            with cache.batch(torch.arange(2) + 2 * step):
                out = tiny.run(compiled, batch)
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
        if epoch == 1:
            after_two_epochs = len(graphs)
    assert cache.stats.hits == 8
    assert len(graphs) == after_two_epochs <= 6


def test_bf16_frozen_base_with_fp32_adapters_compiles_and_stays_close():
    tiny = FACTORIES["hf_vit"](0)
    add_adapter(tiny.model, "a", AdapterConfig.houlsby())
    with torch.no_grad():
        for param in tiny.model.parameters():
            if param.requires_grad:
                param.normal_(std=0.2)
    batch = tiny.make_batch(0)
    expected = tiny.run(tiny.model, batch)
    assert cast_frozen(tiny.model) > 0
    assert {p.dtype for p in tiny.model.parameters() if p.requires_grad} == {torch.float32}
    assert {p.dtype for p in tiny.model.parameters() if not p.requires_grad} == {torch.bfloat16}

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return tiny.run(tiny.model, {k: v.bfloat16() for k, v in batch.items()})

    assert graph_break_reasons(run) == []
    out = run()
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0.1, atol=0.1)
