"""Parallel: many tasks in one forward pass over a shared frozen prefix; each task's output equals running it alone."""

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig, Fuse, Parallel, Stack
from mm_adapters.specs import resolve_path
from mm_adapters.state import get_state, iter_sites

from tiny_backbones import ALL_FACTORIES, FACTORIES

TWO_TOWER = {"hf_clip", "open_clip"}  # their text towers pool by token position: adapt the vision tower
TASKS = ("a", "b", "c")


def _adapted(family, preset, names=TASKS, seed=0):
    tiny = FACTORIES[family](seed)
    # Whisper: the decoder reads the encoder's output with the input batch, so only the decoder may branch
    towers = ("vision",) if family in TWO_TOWER else ("text",) if family == "hf_whisper" else None
    tiny.model.requires_grad_(False)
    for index, name in enumerate(names):
        torch.manual_seed(100 + index)
        mma.add_adapter(tiny.model, name, AdapterConfig.preset(preset, towers=towers))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for site in iter_sites(tiny.model):
            for adapter in site.adapters.values():
                for parameter in adapter.parameters():
                    parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return tiny


def _alone(tiny, setup, batch, drop):
    mma.set_active_adapters(tiny.model, setup)
    mma.set_adapter_drop(tiny.model, drop)
    with torch.no_grad():
        return tiny.run(tiny.model, batch)


def _task_rows(family, output, n, batch_size):
    """The per-task rows of a tiny run's output (two-tower runs concatenate image and text embeddings)."""
    if family in TWO_TOWER:
        images, texts = output[: n * batch_size], output[n * batch_size :]
        assert texts.shape[0] == batch_size  # the text tower has no adapters: it never branched
        return [torch.cat([images[i * batch_size : (i + 1) * batch_size], texts]) for i in range(n)]
    return list(output.split(batch_size))


@pytest.mark.parametrize("family", sorted(FACTORIES))
@pytest.mark.parametrize("preset", ["houlsby", "pfeiffer", "parallel"])
@pytest.mark.parametrize("drop", [0, 1])
def test_each_task_equals_running_it_alone(family, preset, drop):
    tiny = _adapted(family, preset)
    batch = tiny.make_batch(3)
    expected = [_alone(tiny, name, batch, drop) for name in TASKS]
    output = _alone(tiny, Parallel(*TASKS), batch, drop)
    batch_size = 2
    assert output.shape[0] == expected[0].shape[0] + (len(TASKS) - 1) * batch_size
    for got, want in zip(_task_rows(family, output, len(TASKS), batch_size), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.equal(expected[0], expected[1])  # the tasks really differ


def _rows_of(output):
    return (output[0] if isinstance(output, tuple) else output).shape[0]


@pytest.mark.parametrize("drop", [0, 1])
def test_layers_below_the_branch_run_once_without_autograd(drop):
    tiny = _adapted("hf_bert", "pfeiffer", names=("a", "b"))
    model = tiny.model
    mma.set_active_adapters(model, Parallel("a", "b"))
    mma.set_adapter_drop(model, drop)  # dropping moves the branch up: layer 1 is then computed once too
    layers = resolve_path(model, get_state(model).spec.towers["text"].layers)
    outputs, attention_rows = {}, []
    handles = [
        layers[i].register_forward_hook(lambda m, a, out, i=i: outputs.setdefault(i, out)) for i in (0, 1)
    ]
    # the branch layer's attention runs before its (Pfeiffer) adapter: once, on the original rows
    handles.append(
        layers[drop].attention.register_forward_pre_hook(
            lambda m, args: attention_rows.append(args[0].shape[0])
        )
    )
    model.train()  # the adapters train; the shared prefix still builds no graph
    hidden = model(**tiny.make_batch(0)).last_hidden_state
    for handle in handles:
        handle.remove()
    assert hidden.shape[0] == 4
    assert _rows_of(outputs[0]) == (2 if drop else 4)
    assert _rows_of(outputs[1]) == 4
    assert attention_rows == [2]
    if drop:
        first = outputs[0][0] if isinstance(outputs[0], tuple) else outputs[0]
        assert first.grad_fn is None and not first.requires_grad
    hidden.sum().backward()
    grads = {
        n for site in iter_sites(model) for n, a in site.adapters.items() if a.up.weight.grad is not None
    }
    assert grads == {"a", "b"}


def test_padded_text_batch_replicates_the_attention_mask():
    tiny = _adapted("hf_bert", "houlsby", names=("a", "b"))
    ids = torch.randint(1, 100, (3, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    mask[2, 2:] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    expected = [_alone(tiny, name, batch, 1) for name in ("a", "b")]
    output = _alone(tiny, Parallel("a", "b"), batch, 1)
    for got, want in zip(output.split(3), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("drop", [0, 1])
def test_a_fuse_and_a_stack_as_branches(drop):
    tiny = _adapted("hf_vit", "pfeiffer", names=("a", "b", "c"))
    model = tiny.model
    mma.add_fusion(model, ["a", "b"], set_active=False)
    with torch.no_grad():
        for site in iter_sites(model):
            for fusion in site.fusions.values():
                fusion.query.weight.normal_(0, 0.5)
    batch = tiny.make_batch(1)
    setups = [Fuse("a", "b"), Stack("a", "c"), "b"]
    expected = [_alone(tiny, setup, batch, drop) for setup in setups]
    output = _alone(tiny, Parallel(*setups), batch, drop)
    split = mma.split_tasks(model, output, batch_size=2)
    assert list(split) == ["a-b", "c", "b"]
    for got, want in zip(split.values(), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the fusion layer of a Fuse branch trains, as under Fuse alone
    site = next(s for s in iter_sites(model) if s.fusions)
    assert site.fusions["a-b"].query.weight.requires_grad
    assert site.adapters["c"].up.weight.requires_grad  # named directly (in a Stack) trains


def test_labels_name_the_branches_and_must_differ():
    assert Parallel(Fuse("a", "b"), Stack("x", "y"), "z").labels == ("a-b", "y", "z")
    assert Parallel(["a", "b"]).children == ("a", "b")
    with pytest.raises(ValueError, match="distinct labels"):
        Parallel("a", Stack("x", "a"))
    with pytest.raises(ValueError, match="adapter name, a Stack or a Fuse"):
        Parallel("a", 3)


def test_split_tasks_and_switching_back():
    tiny = _adapted("timm_vit", "pfeiffer", names=("a", "b"))
    model = tiny.model
    batch = tiny.make_batch(0)
    alone = _alone(tiny, "a", batch, 0)
    output = _alone(tiny, Parallel("a", "b"), batch, 0)
    split = mma.split_tasks(model, output, batch_size=2)
    assert set(split) == {"a", "b"}
    torch.testing.assert_close(split["a"], alone, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="neither the batch"):
        mma.split_tasks(model, output, batch_size=5)
    # a plain setup removes the replication hooks: the model is single-task again
    assert _alone(tiny, "a", batch, 0).shape[0] == 2
    with pytest.raises(ValueError, match="needs an active Parallel"):
        mma.split_tasks(model, output, batch_size=2)


def test_a_tower_pooled_by_token_position_cannot_branch():
    tiny = FACTORIES["hf_clip"](0)
    for name in ("a", "b"):
        mma.add_adapter(tiny.model, name, AdapterConfig.pfeiffer())  # both towers
        with torch.no_grad():
            for site in iter_sites(tiny.model):
                if name in site.adapters:
                    site.adapters[name].up.weight.normal_()
    with pytest.raises(ValueError, match="cannot branch the 'text' tower"):
        mma.set_active_adapters(tiny.model, Parallel("a", "b"))
    # dropping every text adapter makes the tasks agree there
    mma.set_active_adapters(tiny.model, "a")
    mma.set_adapter_drop(tiny.model, {"text": 2})
    mma.set_active_adapters(tiny.model, Parallel("a", "b"))


@pytest.mark.parametrize("family", ["hf_bert", "timm_vit", "hf_wavlm"])
@pytest.mark.parametrize("preset,reads", [("pfeiffer", "output"), ("parallel", "sublayer_input")])
def test_every_placement_reading_equals_running_alone(family, preset, reads):
    tiny = FACTORIES[family](0)
    tiny.model.requires_grad_(False)
    for index, name in enumerate(("a", "b")):
        torch.manual_seed(index)
        mma.add_adapter(tiny.model, name, AdapterConfig.preset(preset, reads=reads, init="bert"))
    batch = tiny.make_batch(2)
    expected = [_alone(tiny, name, batch, 0) for name in ("a", "b")]
    output = _alone(tiny, Parallel("a", "b"), batch, 0)
    for got, want in zip(output.split(2), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("example", sorted(set(ALL_FACTORIES) - set(FACTORIES)))
def test_every_other_family_runs_its_tasks_in_parallel(example):
    """The core families above run every placement; each other family entry's example runs Pfeiffer adapters."""
    tiny = ALL_FACTORIES[example](0)
    towers = get_state(mma.add_adapter(tiny.model, "a", AdapterConfig.pfeiffer(init="bert"))).spec.towers
    if len(towers) != 1:
        pytest.skip("two-tower examples are covered by hf_clip / open_clip")
    torch.manual_seed(1)
    mma.add_adapter(tiny.model, "b", AdapterConfig.pfeiffer(init="bert"))
    tiny.model.requires_grad_(False)
    batch = tiny.make_batch(0)
    expected = [_alone(tiny, name, batch, 0) for name in ("a", "b")]
    output = _alone(tiny, Parallel("a", "b"), batch, 0)
    for got, want in zip(output.split(expected[0].shape[0]), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
