"""Gradient checkpointing of the adapted layers (with the frozen prefix runner below them)."""

from __future__ import annotations

import copy

import torch

from mm_adapters import AdapterConfig, add_adapter
from mm_adapters.speed import CheckpointedLayer, checkpoint_layers, uncheckpoint_layers, wrap_frozen_prefix

from tiny_backbones import FACTORIES


def _saved_bytes(fn) -> int:
    total = []

    def pack(tensor):
        total.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(total)


def test_checkpointed_layers_give_the_same_gradients_and_save_less():
    tiny = FACTORIES["hf_bert"](0)
    add_adapter(tiny.model, "a", AdapterConfig.houlsby(layers="last:1"))
    with torch.no_grad():
        for param in tiny.model.parameters():
            if param.requires_grad:
                param.normal_(std=0.2)
    plain = copy.deepcopy(tiny.model).train()
    wrap_frozen_prefix(tiny.model)
    assert (
        checkpoint_layers(tiny.model) == 1
    )  # the prefix layer is not checkpointed: it stores nothing anyway
    tiny.model.train()
    batch = tiny.make_batch(0)
    weights = torch.randn_like(tiny.run(plain, batch))
    plain_saved = _saved_bytes(lambda: (tiny.run(plain, batch) * weights).sum().backward())
    saved = _saved_bytes(lambda: (tiny.run(tiny.model, batch) * weights).sum().backward())
    assert saved < plain_saved / 2
    grads = {n: p.grad for n, p in tiny.model.named_parameters() if p.requires_grad}
    expected = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    assert len(grads) == len(expected) == 8
    for got, want in zip(grads.values(), expected.values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    uncheckpoint_layers(tiny.model)
    assert not any(isinstance(m, CheckpointedLayer) for m in tiny.model.modules())


def test_checkpointing_reaches_blocks_gathered_over_stages():
    """Swin's tower is ``encoder.layers.*.blocks``: a list built from every stage, not one module list."""
    from tiny_backbones import ALL_FACTORIES

    tiny = ALL_FACTORIES["hf_swin"](0)
    model = tiny.model
    add_adapter(model, "a", AdapterConfig.houlsby())
    batch = tiny.make_batch(0)
    with torch.no_grad():
        before = tiny.run(model, batch)
    blocks = sum(len(stage.blocks) for stage in model.encoder.layers)
    assert blocks > 1 and checkpoint_layers(model) == blocks
    assert sum(isinstance(m, CheckpointedLayer) for m in model.modules()) == blocks
    assert checkpoint_layers(model) == 0  # already wrapped
    model.train()
    tiny.run(model, batch).float().pow(2).mean().backward()  # recomputes through the wrapped blocks
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        assert torch.equal(tiny.run(model, batch), before)
    uncheckpoint_layers(model)
    assert not any(isinstance(m, CheckpointedLayer) for m in model.modules())
