"""Mixed-task batches in one forward pass (Route): every row equals running it alone with its own task."""

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters import AdapterConfig, Route, RoutedHeads, set_row_tasks
from mm_adapters.state import iter_sites

from tiny_backbones import ALL_FACTORIES, FACTORIES, hf_bert, hf_clip, hf_vit

TASKS = ("a", "b", "c")
SHUFFLED = [2, 0, 1, 1, 2, 0]


def _randomise(model, seed=0):
    """Non-zero adapters (the presets start at identity), different per task."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for site in iter_sites(model):
            for adapter in site.adapters.values():
                for param in adapter.parameters():
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


def _with_tasks(tiny, configs):
    tiny.model.requires_grad_(False)
    for name, config in configs.items():
        mma.add_adapter(tiny.model, name, config)
    _randomise(tiny.model)
    tiny.model.eval()
    return tiny


def _batch(tiny, size):
    parts = [tiny.make_batch(seed) for seed in range(3)]
    return {key: torch.cat([p[key] for p in parts])[:size] for key in parts[0]}


def _rows(batch, index):
    return {key: value[index : index + 1] for key, value in batch.items()}


def _routed(tiny, batch, ids, kernel="gather", tasks=TASKS):
    mma.set_active_adapters(tiny.model, Route(*tasks, kernel=kernel))
    set_row_tasks(tiny.model, torch.tensor(ids))
    with torch.no_grad():
        return tiny.run(tiny.model, batch)


def _alone(tiny, batch, ids, tasks=TASKS):
    """Each row run by itself with its task active; rows regrouped as the model returns them (CLIP returns all
    image embeddings, then all text embeddings)."""
    outputs = []
    for row, task in enumerate(ids):
        mma.set_active_adapters(tiny.model, tasks[task])
        with torch.no_grad():
            outputs.append(tiny.run(tiny.model, _rows(batch, row)))
    return torch.stack(outputs, dim=1).flatten(0, 1)


@pytest.mark.parametrize("family", sorted(FACTORIES))
@pytest.mark.parametrize("preset", ["houlsby", "pfeiffer", "parallel"])
def test_each_row_meets_only_its_own_task(family, preset):
    tiny = _with_tasks(FACTORIES[family](), dict.fromkeys(TASKS, AdapterConfig.preset(preset)))
    batch = _batch(tiny, len(SHUFFLED))
    expected = _alone(tiny, batch, SHUFFLED)
    for kernel in ("gather", "loop"):
        torch.testing.assert_close(_routed(tiny, batch, SHUFFLED, kernel), expected, atol=1e-5, rtol=1e-5)
    mma.set_active_adapters(tiny.model, "a")
    with torch.no_grad():
        assert not torch.allclose(tiny.run(tiny.model, batch), expected, atol=1e-3)  # the tasks really differ


@pytest.mark.parametrize("example", sorted(set(ALL_FACTORIES) - set(FACTORIES)))
def test_every_other_family_routes_rows(example):
    """The core families above run every placement; each other family entry's example runs Pfeiffer adapters."""
    tiny = _with_tasks(ALL_FACTORIES[example](0), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    ids = [1, 2, 0, 1]
    batch = _batch(tiny, len(ids))
    expected = _alone(tiny, batch, ids)
    for kernel in ("gather", "loop"):
        torch.testing.assert_close(_routed(tiny, batch, ids, kernel), expected, atol=1e-5, rtol=1e-5)


def test_any_counts_absent_tasks_and_task_names():
    tiny = _with_tasks(hf_vit(), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    batch = _batch(tiny, 5)
    for ids in ([1, 1, 1, 1, 1], [2, 2, 0, 2, 2], [0, 1, 2, 0, 1]):
        torch.testing.assert_close(_routed(tiny, batch, ids), _alone(tiny, batch, ids), atol=1e-5, rtol=1e-5)
    mma.set_active_adapters(tiny.model, Route(*TASKS))
    set_row_tasks(tiny.model, ["c", "c", "a", "c", "c"])
    with torch.no_grad():
        by_name = tiny.run(tiny.model, batch)
    torch.testing.assert_close(by_name, _alone(tiny, batch, [2, 2, 0, 2, 2]), atol=1e-5, rtol=1e-5)


def test_padded_text_rows_keep_their_masks():
    tiny = _with_tasks(hf_bert(), dict.fromkeys(TASKS, AdapterConfig.houlsby()))
    batch = _batch(tiny, 6)
    lengths = [10, 4, 7, 10, 2, 5]
    for row, length in enumerate(lengths):
        batch["attention_mask"][row, length:] = 0
    ids = SHUFFLED
    for kernel in ("gather", "loop"):
        routed = _routed(tiny, batch, ids, kernel)
        expected = _alone(tiny, batch, ids)
        for row, length in enumerate(
            lengths
        ):  # padded positions are garbage in both; compare the real tokens
            torch.testing.assert_close(routed[row, :length], expected[row, :length], atol=1e-5, rtol=1e-5)


def test_tasks_of_different_shapes_and_layers_are_grouped():
    configs = {
        "a": AdapterConfig.pfeiffer(),
        "b": AdapterConfig.pfeiffer(reduction_factor=4),  # another bottleneck width: its own stack
        "c": AdapterConfig.pfeiffer(layers="last:1", scaling=2.0),  # absent from the lower layer
    }
    tiny = _with_tasks(hf_bert(), configs)
    batch = _batch(tiny, 6)
    expected = _alone(tiny, batch, SHUFFLED)
    for kernel in ("gather", "loop"):
        torch.testing.assert_close(_routed(tiny, batch, SHUFFLED, kernel), expected, atol=1e-5, rtol=1e-5)


def test_adapter_drop_applies_to_routed_batches():
    tiny = _with_tasks(hf_vit(), dict.fromkeys(TASKS, AdapterConfig.houlsby()))
    batch = _batch(tiny, 6)
    mma.set_adapter_drop(tiny.model, 1)
    routed = _routed(tiny, batch, SHUFFLED)
    torch.testing.assert_close(routed, _alone(tiny, batch, SHUFFLED), atol=1e-5, rtol=1e-5)
    mma.set_adapter_drop(tiny.model, 0)
    assert not torch.allclose(routed, _routed(tiny, batch, SHUFFLED), atol=1e-4)


def test_two_towers_take_ids_per_tower():
    tiny = _with_tasks(hf_clip(), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    batch = _batch(tiny, 4)
    mma.set_active_adapters(tiny.model, Route(*TASKS))
    set_row_tasks(tiny.model, {"vision": torch.tensor([0, 1, 2, 0]), "text": torch.tensor([2, 2, 1, 0])})
    with torch.no_grad():
        routed = tiny.run(tiny.model, batch)
    with pytest.raises(ValueError, match="unknown towers"):
        set_row_tasks(tiny.model, {"audio": torch.tensor([0])})
    images, texts = routed.chunk(2)
    for row, (vision_task, text_task) in enumerate(zip([0, 1, 2, 0], [2, 2, 1, 0], strict=True)):
        alone = {}
        for task in {vision_task, text_task}:
            mma.set_active_adapters(tiny.model, TASKS[task])
            with torch.no_grad():
                alone[task] = tiny.run(tiny.model, _rows(batch, row))
        torch.testing.assert_close(images[row], alone[vision_task][0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(texts[row], alone[text_task][1], atol=1e-5, rtol=1e-5)


def test_clear_errors():
    tiny = _with_tasks(hf_bert(), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    batch = _batch(tiny, 4)
    with pytest.raises(ValueError, match="needs an active Route"):
        set_row_tasks(tiny.model, [0, 1])
    with pytest.raises(ValueError, match=r"No adapter named \['zzz'\]"):
        mma.set_active_adapters(tiny.model, Route("a", "zzz"))
    with pytest.raises(ValueError, match="listed twice"):
        Route("a", "a")
    with pytest.raises(ValueError, match="kernel must be one of"):
        Route("a", kernel="fast")
    mma.set_active_adapters(tiny.model, Route(*TASKS))
    with pytest.raises(RuntimeError, match="no row tasks are set"):
        tiny.run(tiny.model, batch)
    with pytest.raises(ValueError, match=r"Unknown task ids \[3, 7\]: there are 3 tasks"):
        set_row_tasks(tiny.model, torch.tensor([0, 3, 7, 1]))
    with pytest.raises(ValueError, match=r"Unknown tasks \['x'\]"):
        set_row_tasks(tiny.model, ["a", "x"])
    with pytest.raises(ValueError, match="1-D integer tensor"):
        set_row_tasks(tiny.model, torch.tensor([0.0, 1.0]))
    set_row_tasks(tiny.model, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="gave 3 task ids, but the 'text' tower's batch has 4 rows"):
        tiny.run(tiny.model, batch)


def _storages(model, names=None):
    return {
        p.untyped_storage().data_ptr()
        for site in iter_sites(model)
        for name, adapter in site.adapters.items()
        if names is None or name in names
        for p in adapter.parameters()
    }


def test_stacks_hold_the_weights_once_and_follow_in_place_changes(tmp_path):
    tiny = _with_tasks(hf_bert(), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    params = [p for site in iter_sites(tiny.model) for p in site.adapters.parameters()]
    before = len(_storages(tiny.model))
    batch = _batch(tiny, 6)
    _routed(tiny, batch, SHUFFLED)
    # every adapter parameter is now a view of its site's stacks: 4 stacks per site, no second copy
    assert len(_storages(tiny.model)) == 4 * len(list(iter_sites(tiny.model))) < before
    assert [
        p for site in iter_sites(tiny.model) for p in site.adapters.parameters()
    ] == params  # same objects
    mma.save_adapter(tiny.model, "b", tmp_path / "b")
    _randomise(tiny.model, seed=1)  # in place: the stacks see it without repacking
    torch.testing.assert_close(
        _routed(tiny, batch, SHUFFLED), _alone(tiny, batch, SHUFFLED), atol=1e-5, rtol=1e-5
    )
    mma.load_adapter(tiny.model, tmp_path / "b", "b2", set_active=False)
    site = next(iter_sites(tiny.model))
    site.adapters["b"].up.weight = nn.Parameter(site.adapters["b2"].up.weight.detach().clone())  # replaced
    routed = _routed(tiny, batch, SHUFFLED)
    torch.testing.assert_close(routed, _alone(tiny, batch, SHUFFLED), atol=1e-5, rtol=1e-5)


def test_tasks_added_and_removed_while_routing():
    tiny = _with_tasks(hf_bert(), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    batch = _batch(tiny, 6)
    _routed(tiny, batch, SHUFFLED)
    mma.add_adapter(tiny.model, "d", AdapterConfig.pfeiffer(init="bert"), set_active=False)  # keeps the Route
    tasks = ("a", "c", "d")
    torch.testing.assert_close(
        _routed(tiny, batch, SHUFFLED, tasks=tasks),
        _alone(tiny, batch, SHUFFLED, tasks),
        atol=1e-5,
        rtol=1e-5,
    )
    sites = len(list(iter_sites(tiny.model)))
    routed = _storages(tiny.model, tasks)
    left = _storages(tiny.model, ["b"])  # left the route: its own storage again, no old stack kept alive
    assert len(routed) == 4 * sites and len(left) == 4 * sites and not routed & left
    mma.delete_adapter(tiny.model, "b")
    assert _storages(tiny.model) == routed


def test_training_routes_gradients_to_each_rows_task():
    tiny = _with_tasks(hf_vit(), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    batch = _batch(tiny, 4)
    mma.set_active_adapters(tiny.model, Route(*TASKS))
    set_row_tasks(tiny.model, torch.tensor([0, 2, 0, 2]))
    tiny.run(tiny.model, batch).square().mean().backward()
    grads = {
        name: [p.grad for site in iter_sites(tiny.model) for p in site.adapters[name].parameters()]
        for name in TASKS
    }
    assert all(g is None or not g.any() for g in grads["b"])
    assert all(g is not None and g.any() for name in ("a", "c") for g in grads[name][-2:])


def test_routed_heads_apply_each_rows_head():
    torch.manual_seed(0)
    heads = {
        "a": nn.Linear(8, 3),
        "b": nn.Linear(8, 3),
        "c": nn.Linear(8, 5),
        "d": nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)),
    }
    routed = RoutedHeads(heads)
    features = torch.randn(6, 8)
    ids = [3, 0, 2, 1, 0, 3]
    with torch.no_grad():
        outputs = routed(features, torch.tensor(ids))
        tokens = routed(torch.randn(6, 4, 8), ["a", "b", "a", "c", "d", "c"])
    for row, task in enumerate(ids):
        expected = heads["abcd"[task]](features[row])
        torch.testing.assert_close(outputs[row], expected, atol=1e-6, rtol=1e-5)
    assert [t.shape for t in tokens] == [(4, 3), (4, 3), (4, 3), (4, 5), (4, 2), (4, 5)]
    with pytest.raises(ValueError, match="2 task ids for a batch of 6"):
        routed(features, [0, 1])


def test_sites_with_adapters_that_cannot_stack_loop():
    tiny = hf_clip()
    tiny.model.requires_grad_(False)
    for name in TASKS:  # cross-modal adapters share a middle projection between the towers: not stackable
        mma.add_cross_modal_adapter(tiny.model, name, AdapterConfig.pfeiffer(), share="middle")
    _randomise(tiny.model)
    batch = _batch(tiny, 6)
    torch.testing.assert_close(
        _routed(tiny, batch, SHUFFLED), _alone(tiny, batch, SHUFFLED), atol=1e-5, rtol=1e-5
    )


def test_moving_the_model_restacks_at_the_next_batch():
    tiny = _with_tasks(hf_bert(), dict.fromkeys(TASKS, AdapterConfig.pfeiffer()))
    batch = _batch(tiny, 6)
    _routed(tiny, batch, SHUFFLED)
    tiny.model.double()  # replaces every parameter's storage: the stacks are stale
    set_row_tasks(tiny.model, torch.tensor(SHUFFLED))  # no re-activation: the per-batch check notices
    with torch.no_grad():
        routed = tiny.run(tiny.model, batch)
    assert routed.dtype == torch.float64
    torch.testing.assert_close(routed, _alone(tiny, batch, SHUFFLED), atol=1e-9, rtol=1e-9)
