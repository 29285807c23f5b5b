"""AdapterFusion: weights, single-adapter fusion, stage-2 freezing, save/load, gradient checkpointing, plots."""

import warnings

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig, AdapterLoadError, Fuse
from mm_adapters.state import iter_sites

from tiny_backbones import hf_bert, hf_vit


def _trained_adapters(tiny, names=("a", "b"), config=None):
    """Adapters with random (non-zero) up-projections, as if trained."""
    for name in names:
        mma.add_adapter(tiny.model, name, config)
    with torch.no_grad():
        for site in iter_sites(tiny.model):
            for adapter in site.adapters.values():
                adapter.up.weight.normal_(0, 0.5)
    return tiny


def _loss(output: torch.Tensor) -> torch.Tensor:
    """Sensitive to every hidden unit (a squared norm is not: the tiny models end in LayerNorm)."""
    return (output * torch.linspace(-1.0, 1.0, output.shape[-1])).sum()


def _train_fusion(tiny, batch, steps=3):
    parameters = [p for p in tiny.model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        _loss(tiny.run(tiny.model, batch)).backward()
        optimizer.step()


@pytest.mark.parametrize("factory", [hf_bert, hf_vit])
def test_fusion_weights_sum_to_one_per_token(factory):
    tiny = _trained_adapters(factory(), ("a", "b", "c"))
    name = mma.add_fusion(tiny.model, ["a", "b", "c"])
    batch = tiny.make_batch(0)
    _train_fusion(tiny, batch)  # away from the uniform start
    with mma.record_fusion_weights(tiny.model, name) as weights, torch.no_grad():
        hidden = tiny.run(tiny.model, batch)
    assert sorted(weights) == [("text" if factory is hf_bert else "vision", i, "ffn") for i in (0, 1)]
    for tensor in weights.values():
        assert tensor.shape == (*hidden.shape[:2], 3)
        torch.testing.assert_close(tensor.sum(-1), torch.ones(hidden.shape[:2]))
        assert (tensor - 1 / 3).abs().max() > 1e-3  # trained weights are no longer the average
    with torch.no_grad():
        tiny.run(tiny.model, batch)
    assert len(weights) == 2  # recording stopped with the block: nothing new was kept


def test_fusion_starts_as_the_average_of_its_adapters():
    tiny = _trained_adapters(hf_bert())
    batch = tiny.make_batch(0)
    mma.add_fusion(tiny.model, ["a", "b"])
    with mma.record_fusion_weights(tiny.model, "a-b") as weights, torch.no_grad():
        tiny.run(tiny.model, batch)
    for tensor in weights.values():
        torch.testing.assert_close(tensor, torch.full_like(tensor, 0.5))


def test_fusion_of_one_adapter_is_that_adapter():
    tiny = _trained_adapters(hf_bert(), ("a",), AdapterConfig.houlsby())
    batch = tiny.make_batch(0)
    with torch.no_grad():
        expected = tiny.run(tiny.model, batch)
    name = mma.add_fusion(tiny.model, ["a"], name="solo")
    assert name == "solo" and mma.active_adapters(tiny.model) == ("a",)
    with mma.record_fusion_weights(tiny.model, "solo") as weights, torch.no_grad():
        fused = tiny.run(tiny.model, batch)
    torch.testing.assert_close(fused, expected)
    assert len(weights) == 4  # attn and ffn of both layers
    assert all(torch.equal(w, torch.ones_like(w)) for w in weights.values())


def test_stage_two_trains_only_the_fusion_layers():
    tiny = _trained_adapters(hf_bert())
    frozen = {k: v.clone() for k, v in tiny.model.state_dict().items() if ".fusions." not in k}
    mma.add_fusion(tiny.model, ["a", "b"])
    trainable = [n for n, p in tiny.model.named_parameters() if p.requires_grad]
    assert trainable and all(".fusions.a-b." in n for n in trainable)
    _train_fusion(tiny, tiny.make_batch(0))
    after = tiny.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # backbone and adapters bit-identical
    mma.set_active_adapters(tiny.model, "a")  # back to plain adapters: fusion frozen, adapter a trains
    trainable = {
        n.split(".adapters.")[-1].split(".")[0] for n, p in tiny.model.named_parameters() if p.requires_grad
    }
    assert trainable == {"a"}


def test_fuse_block_finds_the_fusion_by_its_adapters():
    tiny = _trained_adapters(hf_bert())
    mma.add_fusion(tiny.model, ["a", "b"], name="ab", set_active=False)
    assert mma.active_adapters(tiny.model) == ("b",)  # unchanged
    mma.set_active_adapters(tiny.model, Fuse("b", "a"))
    assert mma.active_adapters(tiny.model) == ("a", "b")  # the fusion's weight order
    with pytest.raises(ValueError, match="No fusion over"):
        mma.set_active_adapters(tiny.model, Fuse("a"))
    mma.add_fusion(tiny.model, ["a", "b"], name="ab2", set_active=False)
    with pytest.raises(ValueError, match="pick one with Fuse"):
        mma.set_active_adapters(tiny.model, Fuse("a", "b"))
    mma.set_active_adapters(tiny.model, Fuse("a", "b", name="ab2"))
    with pytest.raises(ValueError, match="fused by"):
        mma.delete_adapter(tiny.model, "a")
    with pytest.raises(ValueError, match="active"):
        mma.delete_fusion(tiny.model, "ab2")
    mma.delete_fusion(tiny.model, "ab")
    assert mma.list_fusions(tiny.model) == {"ab2": ("a", "b")}


def test_trained_fusion_reloads_with_identical_outputs(tmp_path):
    tiny = _trained_adapters(hf_bert())
    batch = tiny.make_batch(1)
    head = torch.nn.Linear(32, 3)
    mma.add_fusion(tiny.model, ["a", "b"])
    _train_fusion(tiny, batch)
    with torch.no_grad():
        expected = tiny.run(tiny.model, batch)
    for name in ("a", "b"):
        mma.save_adapter(tiny.model, name, tmp_path / name)
    mma.save_fusion(tiny.model, "a-b", tmp_path / "fusion", head=head)
    with pytest.raises(FileExistsError):
        mma.save_fusion(tiny.model, "a-b", tmp_path / "fusion")

    torch.manual_seed(123)  # new adapter and fusion initialisations must all be overwritten by the files
    fresh = hf_bert()
    mma.load_adapter(fresh.model, tmp_path / "b")
    mma.load_adapter(fresh.model, tmp_path / "a")
    fresh_head = torch.nn.Linear(32, 3)
    assert mma.load_fusion(fresh.model, tmp_path / "fusion", head=fresh_head) == "a-b"
    assert mma.active_adapters(fresh.model) == ("a", "b")
    with torch.no_grad():
        torch.testing.assert_close(fresh.run(fresh.model, batch), expected, rtol=0, atol=0)
    torch.testing.assert_close(fresh_head.weight, head.weight, rtol=0, atol=0)


def test_loading_a_fusion_without_its_adapters_names_them(tmp_path):
    tiny = _trained_adapters(hf_bert(), ("a", "b", "c"))
    mma.add_fusion(tiny.model, ["a", "b", "c"], name="abc")
    mma.save_fusion(tiny.model, "abc", tmp_path / "fusion")
    fresh = hf_bert()
    mma.add_adapter(fresh.model, "b")
    with pytest.raises(AdapterLoadError, match=r"lacks \['a', 'c'\].*load_adapter"):
        mma.load_fusion(fresh.model, tmp_path / "fusion")
    assert mma.list_fusions(fresh.model) == {}
    with pytest.raises(AdapterLoadError, match="save_fusion"):
        mma.load_fusion(fresh.model, tmp_path)


@pytest.mark.parametrize("reentrant", [False, True])
def test_gradient_checkpointing_gives_the_same_fusion_gradients(reentrant):
    def fusion_gradients(checkpointing: bool):
        tiny = _trained_adapters(hf_bert(), config=AdapterConfig.houlsby())
        mma.add_fusion(tiny.model, ["a", "b"])
        with torch.no_grad():  # as if trained: a zero query would leave the keys without gradient
            for parameter in tiny.model.parameters():
                if parameter.requires_grad:
                    parameter.add_(torch.randn_like(parameter) * 0.1)
        calls = []
        site = tiny.model.encoder.layer[0].output.dense
        site.fusions["a-b"].register_forward_hook(lambda *_: calls.append(1))
        tiny.model.train()
        if checkpointing:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                tiny.model.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": reentrant}
                )
            if reentrant:  # reentrant checkpoints need an input that requires grad to backpropagate at all
                tiny.model.enable_input_require_grads()
        _loss(tiny.run(tiny.model, tiny.make_batch(0))).backward()
        grads = {n: p.grad for n, p in tiny.model.named_parameters() if p.requires_grad}
        return grads, len(calls)

    plain, plain_calls = fusion_gradients(False)
    checkpointed, checkpointed_calls = fusion_gradients(True)
    assert (plain_calls, checkpointed_calls) == (1, 2)  # the layer really was recomputed in backward
    assert plain.keys() == checkpointed.keys() and len(plain) == 4 * 5  # 4 sites x (q, k weight+bias, value)
    for name, grad in plain.items():
        assert grad is not None and grad.abs().sum() > 0, name
        torch.testing.assert_close(checkpointed[name], grad)


def test_plot_fusion_weights_writes_a_png(tmp_path):
    tiny = _trained_adapters(hf_vit())
    mma.add_fusion(tiny.model, ["a", "b"])
    with mma.record_fusion_weights(tiny.model, "a-b") as weights, torch.no_grad():
        tiny.run(tiny.model, tiny.make_batch(0))
    path = mma.plot_fusion_weights(weights, tmp_path / "plots" / "fusion.png", adapter_names=["a", "b"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
    with pytest.raises(ValueError, match="record_fusion_weights"):
        mma.plot_fusion_weights({}, tmp_path / "empty.png")


def test_regularization_is_zero_at_the_identity_value():
    tiny = _trained_adapters(hf_bert())
    mma.add_fusion(tiny.model, ["a", "b"])
    assert mma.fusion_regularization_loss(tiny.model, "a-b").item() == 0.0
    _train_fusion(tiny, tiny.make_batch(0))
    assert mma.fusion_regularization_loss(tiny.model, "a-b").item() > 0.0


def test_fusion_errors_say_what_to_do():
    tiny = _trained_adapters(hf_bert())
    with pytest.raises(ValueError, match=r"no adapter named \['zzz'\]"):
        mma.add_fusion(tiny.model, ["a", "zzz"])
    mma.add_fusion(tiny.model, ["a", "b"])
    with pytest.raises(ValueError, match="already exists"):
        mma.add_fusion(tiny.model, ["a", "b"])
    with pytest.raises(ValueError, match="No fusion named"):
        with mma.record_fusion_weights(tiny.model, "nope"):
            pass
