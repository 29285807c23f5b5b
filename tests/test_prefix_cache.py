"""Frozen-prefix feature cache: hits skip the prefix, outputs and trained adapters match the uncached model."""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mm_adapters import AdapterConfig, add_adapter, set_active_adapters
from mm_adapters.speed import FrozenPrefixLayer, PrefixCache, prefix_depths

from tiny_backbones import FACTORIES

FAMILIES = ["hf_bert", "hf_vit", "hf_clip", "hf_wav2vec2", "timm_vit", "open_clip"]


def _adapted(family: str, layers="last:1"):
    tiny = FACTORIES[family](0)
    add_adapter(tiny.model, "a", AdapterConfig.pfeiffer(layers=layers))
    _randomise_adapters(tiny.model)
    return tiny


def _randomise_adapters(model: nn.Module) -> None:
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.normal_(std=0.2)


def _prefix_calls(model: nn.Module) -> list[int]:
    calls: list[int] = []
    for module in model.modules():
        if isinstance(module, FrozenPrefixLayer):
            module.base_layer.register_forward_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize("family", FAMILIES)
def test_hit_returns_prefix_output_without_running_the_prefix(family):
    tiny = _adapted(family)
    batch = tiny.make_batch(0)
    expected = tiny.run(tiny.model, batch)
    cache = PrefixCache().attach(tiny.model)
    calls = _prefix_calls(tiny.model)
    index = torch.tensor([5, 9])
    with cache.batch(index):
        first = tiny.run(tiny.model, batch)
    assert len(calls) == len(cache.depths)  # one prefix layer per tower ran once
    with cache.batch(index):
        second = tiny.run(tiny.model, batch)
    assert len(calls) == len(cache.depths)  # ... and not again
    assert cache.stats.hits == len(cache.depths) and cache.stats.misses == len(cache.depths)
    torch.testing.assert_close(first, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(second, expected, rtol=0, atol=1e-6)


def _bert(dropout: float, layers: int = 4):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=16, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )  # fmt: skip
    model = BertModel(config, add_pooling_layer=False)
    add_adapter(model, "a", AdapterConfig.pfeiffer(layers="last:2", dropout=dropout))
    return model


def _train(model: nn.Module, cache: PrefixCache | None, epochs: int = 3) -> dict[str, torch.Tensor]:
    """Three shuffled epochs over 12 fixed samples; returns the trained adapter and head weights."""
    data = torch.randint(0, 50, (12, 8), generator=torch.Generator().manual_seed(1))
    labels = torch.arange(12) % 3
    torch.manual_seed(2)
    head = nn.Linear(32, 3)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    order = torch.Generator().manual_seed(3)
    torch.manual_seed(4)
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(12, generator=order).split(4):
            with cache.batch(index) if cache is not None else contextlib.nullcontext():
                hidden = model(input_ids=data[index]).last_hidden_state
            loss = F.cross_entropy(head(hidden.mean(1)), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    trained = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    trained.update({f"head.{k}": v.detach().clone() for k, v in head.named_parameters()})
    return trained


def test_training_with_cache_gives_the_same_adapter_as_without():
    """Dropout on: the uncached run uses the same frozen-prefix rules (eval mode) with a zero budget."""
    cached_model, plain_model = _bert(dropout=0.1), _bert(dropout=0.1)
    cache = PrefixCache().attach(cached_model)
    uncached = PrefixCache(max_bytes=0).attach(plain_model)
    with pytest.warns(UserWarning, match="cache is full"):
        expected = _train(plain_model, uncached)
    trained = _train(cached_model, cache)
    assert cache.stats.hits == 6 and cache.stats.misses == 3 and uncached.stats.hits == 0
    assert trained.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(trained[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any((v != 0).any() for k, v in trained.items() if "up" in k)  # the adapters did train


def test_training_with_cache_matches_a_model_without_speed_wrappers():
    cached_model, plain_model = _bert(dropout=0.0), _bert(dropout=0.0)
    cache = PrefixCache().attach(cached_model)
    expected = _train(plain_model, None)
    trained = _train(cached_model, cache)
    assert cache.stats.hits == 6
    for name in expected:
        torch.testing.assert_close(trained[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_all_prefix_layers_skip_on_a_hit_and_stay_in_eval_mode():
    model = _bert(dropout=0.1)
    cache = PrefixCache().attach(model)
    assert cache.depths == {"text": 2} and prefix_depths(model) == {"text": 2}
    calls = _prefix_calls(model)
    model.train()
    wrapped = [m for m in model.modules() if isinstance(m, FrozenPrefixLayer)]
    assert len(wrapped) == 2 and not any(m.base_layer.training for m in wrapped)
    ids = torch.randint(0, 50, (3, 8))
    for _ in range(3):
        with cache.batch(torch.arange(3)):
            model(input_ids=ids)
    assert len(calls) == 2  # both prefix layers ran once, in the first (missing) batch
    assert not model.embeddings.training and model.encoder.layer[3].training


def test_prefix_output_has_no_autograd_graph_but_adapters_get_gradients():
    model = _bert(dropout=0.0)
    _randomise_adapters(model)
    PrefixCache().attach(model)
    outputs = []
    model.encoder.layer[1].register_forward_hook(lambda m, i, o: outputs.append(o))
    hidden = model(input_ids=torch.randint(0, 50, (2, 8))).last_hidden_state
    (hidden * torch.randn_like(hidden)).sum().backward()
    prefix_out = outputs[0][0] if isinstance(outputs[0], tuple) else outputs[0]
    assert not prefix_out.requires_grad
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    # HF audio encoders mark their features requires_grad in training: the prefix still runs without autograd
    assert not model.encoder.layer[0](torch.randn(2, 8, 32, requires_grad=True))[0].requires_grad


def test_a_trainable_prefix_is_refused_and_trainable_embeddings_warned_about():
    model = _bert(dropout=0.0)
    model.encoder.layer[0].output.dense.weight.requires_grad_(True)
    with pytest.raises(ValueError, match="trainable"):
        PrefixCache().attach(model)
    model.encoder.layer[0].output.dense.weight.requires_grad_(False)
    model.embeddings.word_embeddings.weight.requires_grad_(True)
    with pytest.warns(UserWarning, match="embeddings"):
        PrefixCache().attach(model)


def test_audio_model_caches_in_training_mode():
    tiny = _adapted("hf_wav2vec2")
    batch = tiny.make_batch(0)
    cache = PrefixCache().attach(tiny.model)
    tiny.model.train()
    outs = []
    for _ in range(2):
        with cache.batch(torch.arange(2)):
            outs.append(tiny.run(tiny.model, batch))
    assert cache.stats.hits == 1
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-6)
    outs[1].sum().backward()


def test_budget_limits_what_is_stored_and_uncached_samples_still_compute():
    model = _bert(dropout=0.0)
    _randomise_adapters(model)
    row_bytes = 8 * 32 * 4
    cache = PrefixCache(max_bytes=3 * row_bytes).attach(model)
    ids = torch.randint(0, 50, (4, 8), generator=torch.Generator().manual_seed(0))
    expected = model(input_ids=ids).last_hidden_state
    with pytest.warns(UserWarning, match="cache is full"), cache.batch(torch.arange(4)):
        model(input_ids=ids)
    assert cache.stats.stored == 3 and cache.stats.skipped == 1 and cache.store.used_bytes == 3 * row_bytes
    with cache.batch(torch.arange(4)):  # sample 3 is not cached: the whole batch recomputes
        again = model(input_ids=ids).last_hidden_state
    with cache.batch(torch.arange(3)):  # all cached
        hit = model(input_ids=ids[:3]).last_hidden_state
    assert cache.stats.hits == 1
    torch.testing.assert_close(again, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(hit, expected[:3], rtol=0, atol=1e-6)


def test_disk_cache_writes_safetensors_and_serves_hits(tmp_path):
    model = _bert(dropout=0.0)
    _randomise_adapters(model)
    ids = torch.randint(0, 50, (3, 8))
    expected = model(input_ids=ids).last_hidden_state
    cache = PrefixCache(directory=tmp_path / "features").attach(model)
    for _ in range(2):
        with cache.batch(torch.tensor([7, 8, 9])):
            out = model(input_ids=ids).last_hidden_state
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 3
    assert cache.stats.hits == 1
    cache.clear()
    assert not list((tmp_path / "features").glob("*.safetensors"))


def test_namespaces_and_changed_shapes_do_not_hit():
    model = _bert(dropout=0.0)
    _randomise_adapters(model)
    cache = PrefixCache().attach(model)
    short, long = torch.randint(0, 50, (2, 6)), torch.randint(0, 50, (2, 8))
    with cache.batch(torch.arange(2)):
        model(input_ids=short)
    with cache.batch(torch.arange(2), namespace="val"):  # same indices, another dataset
        model(input_ids=long)
    with cache.batch(torch.arange(2)):  # same samples padded to another length: recompute
        out = model(input_ids=long).last_hidden_state
    assert cache.stats.hits == 0
    torch.testing.assert_close(out, model(input_ids=long).last_hidden_state, rtol=0, atol=1e-6)


def test_towers_without_adapters_are_cached_whole():
    tiny = FACTORIES["hf_clip"](0)
    add_adapter(tiny.model, "a", AdapterConfig.pfeiffer(layers="last:1", towers=("vision",)))
    cache = PrefixCache().attach(tiny.model)
    assert cache.depths == {"vision": 1, "text": 2}


def test_detach_restores_the_original_layers_and_keys():
    model = _bert(dropout=0.0)
    keys = list(model.state_dict())
    cache = PrefixCache().attach(model)
    assert list(model.state_dict()) != keys
    cache.detach()
    assert list(model.state_dict()) == keys
    assert not any(isinstance(m, FrozenPrefixLayer) for m in model.modules())


def test_adapters_added_below_the_prefix_after_attach_are_an_error():
    model = _bert(dropout=0.0)
    cache = PrefixCache().attach(model)
    add_adapter(model, "low", AdapterConfig.pfeiffer(layers=(0,)), set_active=False)
    set_active_adapters(model, ["a", "low"])
    with pytest.raises(RuntimeError, match="attach"), cache.batch(torch.arange(2)):
        pass


def test_layers_that_return_more_than_hidden_states_are_not_cached():
    tiny = _adapted("hf_wavlm")  # WavLM layers hand a position bias to the next layer
    batch = tiny.make_batch(0)
    expected = tiny.run(tiny.model, batch)
    cache = PrefixCache().attach(tiny.model)
    with pytest.warns(UserWarning, match="disabled"), cache.batch(torch.arange(2)):
        tiny.run(tiny.model, batch)
    with cache.batch(torch.arange(2)):
        out = tiny.run(tiny.model, batch)
    assert "audio" in cache.refused and cache.stats.hits == 0
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
