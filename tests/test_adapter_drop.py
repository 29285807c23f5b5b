"""AdapterDrop: dropped layers compute the base model, per tower; stochastic drop per batch; timing helper."""

import random
from types import SimpleNamespace

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig
from mm_adapters.composition import (
    drop_random_layers,
    dropped_layers,
    max_droppable_layers,
    time_adapter_drop,
)
from mm_adapters.state import iter_sites

from tiny_backbones import hf_bert, hf_clip, hf_vit


def _hidden_states(tiny, batch):
    with torch.no_grad():
        return tiny.model(**batch, output_hidden_states=True).hidden_states


def _adapted(tiny, config=None):
    tiny.model.requires_grad_(False)  # the base reference runs frozen too
    mma.add_adapter(tiny.model, "task", config or AdapterConfig.houlsby())
    with torch.no_grad():
        for site in iter_sites(tiny.model):
            site.adapters["task"].up.weight.normal_(0, 0.5)
    return tiny


@pytest.mark.parametrize("factory", [hf_bert, hf_vit])
def test_dropped_layers_compute_the_base_model(factory):
    tiny = factory()
    batch = tiny.make_batch(0)
    tiny.model.requires_grad_(False)
    base = _hidden_states(tiny, batch)
    _adapted(tiny)
    adapted = _hidden_states(tiny, batch)
    assert not torch.allclose(adapted[1], base[1])  # layer 0's adapters change its output

    mma.set_adapter_drop(tiny.model, 1)
    assert dropped_layers(tiny.model) == {"text" if factory is hf_bert else "vision": 1}
    dropped = _hidden_states(tiny, batch)
    torch.testing.assert_close(dropped[1], base[1], rtol=0, atol=0)  # after the dropped layer: the base model
    assert not torch.allclose(dropped[2], base[2])  # layer 1 still adapts

    mma.set_adapter_drop(tiny.model, 2)
    torch.testing.assert_close(_hidden_states(tiny, batch)[-1], base[-1], rtol=0, atol=0)
    mma.set_adapter_drop(tiny.model, 0)
    torch.testing.assert_close(_hidden_states(tiny, batch)[-1], adapted[-1], rtol=0, atol=0)


def test_drop_counts_per_tower():
    tiny = hf_clip()
    batch = tiny.make_batch(0)
    tiny.model.requires_grad_(False)
    with torch.no_grad():
        base = tiny.model(**batch)
    _adapted(tiny, AdapterConfig.pfeiffer())
    mma.set_adapter_drop(tiny.model, {"vision": 2})
    assert dropped_layers(tiny.model) == {"vision": 2, "text": 0}
    with torch.no_grad():
        out = tiny.model(**batch)
    torch.testing.assert_close(out.image_embeds, base.image_embeds, rtol=0, atol=0)
    assert not torch.allclose(out.text_embeds, base.text_embeds)


def test_drop_errors_say_what_was_wrong():
    tiny = _adapted(hf_clip())
    with pytest.raises(ValueError, match=r"Unknown towers \['audio'\]"):
        mma.set_adapter_drop(tiny.model, {"audio": 1})
    with pytest.raises(ValueError, match="non-negative integer"):
        mma.set_adapter_drop(tiny.model, -1)
    with pytest.raises(ValueError, match="holds no adapters"):
        mma.set_adapter_drop(torch.nn.Linear(2, 2), 1)


def test_stochastic_drop_draws_every_count_up_to_the_top_layer():
    tiny = _adapted(hf_bert())
    assert max_droppable_layers(tiny.model) == 1  # keep at least the top adapted layer
    rng = random.Random(0)
    counts = {drop_random_layers(tiny.model, rng) for _ in range(40)}
    assert counts == {0, 1}
    assert drop_random_layers(tiny.model, random.Random(1), max_layers=0) == 0
    assert dropped_layers(tiny.model) == {"text": 0}


def test_lightning_callback_drops_during_the_batch_only():
    from mm_adapters.composition.drop_callback import StochasticAdapterDrop

    module = torch.nn.Module()
    module.backbone = _adapted(hf_bert()).model  # as a LightningModule holds its backbone
    callback = StochasticAdapterDrop(seed=3)
    trainer = SimpleNamespace(current_epoch=0)
    seen = []
    for batch_idx in range(12):
        callback.on_train_batch_start(trainer, module, None, batch_idx)
        seen.append(dropped_layers(module)["text"])
        assert seen[-1] == callback.last_dropped
        callback.on_train_batch_end(trainer, module, None, None, batch_idx)
        assert dropped_layers(module) == {"text": 0}
    assert set(seen) == {0, 1}
    replay = StochasticAdapterDrop(seed=3)  # same seed, epoch and batch: the same draws (all DDP ranks agree)
    for batch_idx in range(12):
        replay.on_train_batch_start(trainer, module, None, batch_idx)
        assert replay.last_dropped == seen[batch_idx]


def test_timing_alternates_settings_and_restores_the_model():
    tiny = _adapted(hf_bert())
    batch = tiny.make_batch(0)
    order = []

    def forward():
        order.append(dropped_layers(tiny.model)["text"])
        with torch.no_grad():
            tiny.run(tiny.model, batch)

    timing = time_adapter_drop(tiny.model, forward, drops=(0, 2), repeats=3, warmup=1)
    assert set(timing.seconds) == {0, 2} and all(len(t) == 3 and min(t) > 0 for t in timing.seconds.values())
    assert timing.speedup(0) == 1.0 and timing.speedup(2) > 0 and timing.median(2) > 0
    assert order == [0, 2] * 4
    assert dropped_layers(tiny.model) == {"text": 0}
