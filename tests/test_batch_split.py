"""Multi-task serving: switching adapters on one backbone, and per-sample adapters in one pass (BatchSplit)."""

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig, BatchSplit, Fuse
from mm_adapters.state import iter_sites

from tiny_backbones import hf_bert, hf_vit, hf_wav2vec2, timm_vit


def _with_adapters(tiny, config, names=("a", "b", "c")):
    tiny.model.requires_grad_(False)  # compare against a frozen base (kernel paths can differ)
    for name in names:
        mma.add_adapter(tiny.model, name, config)
    with torch.no_grad():
        for site in iter_sites(tiny.model):
            for adapter in site.adapters.values():
                adapter.up.weight.normal_(0, 0.5)
    return tiny


def _batch(tiny, size):
    """``size`` samples built from several of the factory's 2-sample batches."""
    parts = [tiny.make_batch(seed) for seed in range(3)]
    return {key: torch.cat([p[key] for p in parts])[:size] for key in parts[0]}


def _rows(batch, start, stop):
    return {key: value[start:stop] for key, value in batch.items()}


def _run(tiny, setup, batch):
    mma.set_active_adapters(tiny.model, setup)
    with torch.no_grad():
        return tiny.run(tiny.model, batch)


@pytest.mark.parametrize("factory", [hf_bert, hf_vit, timm_vit, hf_wav2vec2])
@pytest.mark.parametrize("preset", ["houlsby", "parallel"])
def test_each_sample_gets_its_own_adapter(factory, preset):
    tiny = _with_adapters(factory(), AdapterConfig.preset(preset))
    batch = _batch(tiny, 5)
    mixed = _run(tiny, BatchSplit("a", "b", batch_sizes=[2, 3]), batch)
    alone_a = _run(tiny, "a", _rows(batch, 0, 2))
    alone_b = _run(tiny, "b", _rows(batch, 2, 5))
    torch.testing.assert_close(mixed, torch.cat([alone_a, alone_b]))
    assert not torch.allclose(alone_b, _run(tiny, "a", _rows(batch, 2, 5)))  # the adapters really differ


def test_children_can_be_base_stacks_and_fusions():
    tiny = _with_adapters(hf_bert(), AdapterConfig.pfeiffer())
    mma.add_fusion(tiny.model, ["a", "b"], set_active=False)
    batch = _batch(tiny, 6)
    split = BatchSplit(None, ["a", "c"], Fuse("a", "b"), batch_sizes=[1, 2, 3])
    mixed = _run(tiny, split, batch)
    assert mma.active_adapters(tiny.model) == ("a", "c", "b")
    trainable = {n for n, p in tiny.model.named_parameters() if p.requires_grad}
    assert any(".fusions.a-b." in n for n in trainable) and any(".adapters.c." in n for n in trainable)
    assert not any(".adapters.b." in n for n in trainable)  # fused adapters stay frozen
    expected = torch.cat(
        [
            _run(tiny, None, _rows(batch, 0, 1)),
            _run(tiny, ["a", "c"], _rows(batch, 1, 3)),
            _run(tiny, Fuse("a", "b"), _rows(batch, 3, 6)),
        ]
    )
    torch.testing.assert_close(mixed, expected)


def test_split_from_per_sample_adapter_names():
    split = BatchSplit.from_sample_adapters(["a", "a", None, "b", "b", "b"])
    assert split.children == ("a", None, "b") and split.batch_sizes == (2, 1, 3)
    assert BatchSplit(["a", "b"], batch_sizes=[2, 3]).children == ("a", "b")


def test_batch_size_mismatch_is_a_clear_error():
    tiny = _with_adapters(hf_bert(), AdapterConfig.pfeiffer())
    mma.set_active_adapters(tiny.model, BatchSplit("a", "b", batch_sizes=[2, 2]))
    with pytest.raises(ValueError, match="add up to 4 samples, but the batch has 5"):
        tiny.run(tiny.model, _batch(tiny, 5))
    with pytest.raises(ValueError, match="one batch size per child"):
        BatchSplit("a", "b", batch_sizes=[2])
    with pytest.raises(ValueError, match=r"No adapter named \['zzz'\]"):
        mma.set_active_adapters(tiny.model, BatchSplit("a", "zzz", batch_sizes=[1, 1]))


def test_switching_adapters_keeps_the_backbone():
    tiny = _with_adapters(hf_bert(), AdapterConfig.houlsby())
    backbone = {n: p for n, p in tiny.model.named_parameters() if ".adapters." not in n}
    snapshot = {n: p.detach().clone() for n, p in backbone.items()}
    batch = tiny.make_batch(0)
    first = {name: _run(tiny, name, batch) for name in ("a", "b", "c")}
    again = {name: _run(tiny, name, batch) for name in ("c", "a", "b")}
    for name in first:
        torch.testing.assert_close(again[name], first[name], rtol=0, atol=0)
    assert not torch.allclose(first["a"], first["b"])
    current = dict(tiny.model.named_parameters())
    assert all(current[n] is p and torch.equal(p, snapshot[n]) for n, p in backbone.items())
