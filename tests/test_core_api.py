"""The public API's contract: activation, stacking, layer and tower selection, deletion, and clear errors."""

import json

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters import AdapterConfig, AdapterLoadError

from tiny_backbones import FACTORIES, hf_bert, hf_clip, timm_vit


def _perturb(model: nn.Module, scale: float = 0.1) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * scale)


def _frozen_reference(tiny, batch):
    tiny.model.requires_grad_(False)
    with torch.no_grad():
        return tiny.run(tiny.model, batch)


def test_unsupported_model_names_the_supported_ones():
    with pytest.raises(ValueError, match="BertModel.*spec="):
        mma.add_adapter(nn.Sequential(nn.Linear(4, 4)), "task")


def test_custom_spec_can_be_passed():
    tiny = timm_vit()
    spec = mma.BackboneSpec(
        family="my_vit",
        class_names=(),
        towers={
            "vision": mma.TowerSpec(
                layers="blocks",
                attn=mma.SiteSpec("attn", norm="norm1"),
                ffn=mma.SiteSpec("mlp", norm="norm2"),
                hidden_size="mlp.fc2.out_features",
                norm_position="pre",
            )
        },
    )
    mma.add_adapter(tiny.model, "task", spec=spec)
    assert mma.adapted_layers(tiny.model) == {"vision": [0, 1]}


def test_spec_without_norm_position_refuses_residual_placements_before_wrapping():
    tiny = timm_vit()
    spec = mma.BackboneSpec(
        family="my_vit",
        class_names=(),
        towers={
            "vision": mma.TowerSpec(
                layers="blocks",
                attn=mma.SiteSpec("attn"),
                ffn=mma.SiteSpec("mlp"),
                hidden_size="mlp.fc2.out_features",
            )
        },
    )
    with pytest.raises(ValueError, match="norm_position"):
        mma.add_adapter(tiny.model, "task", mma.AdapterConfig.pfeiffer(), spec=spec)
    assert not any(isinstance(m, mma.AdapterSite) for m in tiny.model.modules())
    mma.add_adapter(tiny.model, "plain", mma.AdapterConfig.houlsby_ffn(), spec=spec)  # reads the output only
    assert mma.adapted_layers(tiny.model) == {"vision": [0, 1]}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sites": ("mlp",)},
        {"sites": ()},
        {"activation": "softmax"},
        {"reduction_factor": 0},
        {"reduction_factor": None},
        {"bottleneck_dim": 0},
        {"dropout": 1.0},
        {"layers": "first:2"},
        {"layers": ()},
        {"layers": (0.5,)},
        {"mode": "serial"},
    ],
)
def test_invalid_config_values_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        AdapterConfig(**kwargs)


def test_config_round_trips_and_rejects_unknown_keys():
    config = AdapterConfig.houlsby(layers=(0, -1), towers=("vision",), dropout=0.1)
    assert AdapterConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="Unknown adapter config keys"):
        AdapterConfig.from_dict({**config.to_dict(), "reduction": 8})


def test_presets_follow_the_papers():
    assert AdapterConfig.houlsby().sites == ("attn", "ffn") and not AdapterConfig.houlsby().is_parallel
    assert AdapterConfig.pfeiffer().sites == ("ffn",)
    assert AdapterConfig.parallel().is_parallel and AdapterConfig.parallel().scaling == 4.0
    assert AdapterConfig.pfeiffer().bottleneck_size(768) == 48
    assert AdapterConfig.pfeiffer(bottleneck_dim=7).bottleneck_size(768) == 7


@pytest.mark.parametrize("name", ["", "a.b", "a/b", "..", "has space", "9lives", None, "x" * 65])
def test_invalid_adapter_names(name):
    with pytest.raises(ValueError, match="Invalid adapter name"):
        mma.add_adapter(hf_bert().model, name)


def test_duplicate_name_and_unknown_active_adapter():
    model = hf_bert().model
    mma.add_adapter(model, "task")
    with pytest.raises(ValueError, match="already exists"):
        mma.add_adapter(model, "task")
    with pytest.raises(ValueError, match="No adapter named"):
        mma.set_active_adapters(model, "other")
    with pytest.raises(ValueError, match="No adapter named"):
        mma.delete_adapter(model, "other")


def _trainable_adapter_names(model: nn.Module) -> set[str]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return {n.split(".adapters.")[1].split(".")[0] for n in names}


def test_switching_stacking_and_deactivating():
    tiny = hf_bert()
    batch = tiny.make_batch(0)
    base = _frozen_reference(tiny, batch)
    mma.add_adapter(tiny.model, "a", AdapterConfig.pfeiffer())
    _perturb(tiny.model)
    mma.add_adapter(tiny.model, "b", AdapterConfig.houlsby())
    assert mma.active_adapters(tiny.model) == ("b",)
    _perturb(tiny.model)
    outputs = {}
    for setting in ["a", "b", ("a", "b"), None]:
        mma.set_active_adapters(tiny.model, setting)
        with torch.no_grad():
            outputs[setting] = tiny.run(tiny.model, batch)
    torch.testing.assert_close(outputs[None], base, rtol=0, atol=0)
    assert not torch.allclose(outputs["a"], outputs["b"])
    assert not torch.allclose(outputs[("a", "b")], outputs["a"])
    mma.set_active_adapters(tiny.model, ["a", "b"])
    assert _trainable_adapter_names(tiny.model) == {"a", "b"}
    mma.set_active_adapters(tiny.model, "a")
    assert _trainable_adapter_names(tiny.model) == {"a"}


def test_switching_with_many_adapters_sets_exactly_the_active_one_trainable():
    from mm_adapters.site import AdapterSite
    from mm_adapters.state import iter_sites

    tiny = hf_bert()
    for index in range(12):
        mma.add_adapter(tiny.model, f"t{index}", AdapterConfig.houlsby(), set_active=False)
    # the sites are found without walking their adapters, in the order model.modules() gives them
    assert list(iter_sites(tiny.model)) == [m for m in tiny.model.modules() if isinstance(m, AdapterSite)]
    # a user unfreezes one site's adapters by hand, then switches
    next(iter_sites(tiny.model)).adapters.requires_grad_(True)
    for name in ["t3", "t7", "t3", None, "t11"]:
        mma.set_active_adapters(tiny.model, name)
        assert _trainable_adapter_names(tiny.model) == ({name} if name else set())


def test_layer_selection_and_frozen_prefix_query():
    model = hf_bert().model
    mma.add_adapter(model, "top", AdapterConfig.pfeiffer(layers="last:1"))
    mma.add_adapter(model, "first", AdapterConfig.pfeiffer(layers=(0,)), set_active=False)
    assert mma.adapted_layers(model) == {"text": [1]}
    assert mma.adapted_layers(model, "first") == {"text": [0]}
    with pytest.raises(ValueError, match="out of range"):
        mma.add_adapter(model, "bad", AdapterConfig.pfeiffer(layers=(5,)))


def test_tower_selection_on_clip():
    tiny = hf_clip()
    mma.add_adapter(tiny.model, "vision_only", AdapterConfig.pfeiffer(towers=("vision",)))
    assert mma.adapted_layers(tiny.model) == {"vision": [0, 1]}
    with pytest.raises(ValueError, match="Unknown towers"):
        mma.add_adapter(tiny.model, "bad", AdapterConfig.pfeiffer(towers=("audio",)))


@pytest.mark.parametrize("family", list(FACTORIES))
def test_deleting_every_adapter_restores_the_original_modules(family):
    tiny = FACTORIES[family](0)
    keys = list(tiny.model.state_dict())
    mma.add_adapter(tiny.model, "a", AdapterConfig.houlsby())
    mma.add_adapter(tiny.model, "b", AdapterConfig.parallel())
    mma.delete_adapter(tiny.model, "a")
    mma.delete_adapter(tiny.model, "b")
    assert list(tiny.model.state_dict()) == keys
    assert not any(isinstance(m, (mma.AdapterSite, mma.InputTap)) for m in tiny.model.modules())


def test_count_parameters():
    model = hf_bert().model
    total = sum(p.numel() for p in model.parameters())
    assert mma.count_parameters(model) == (total, total)
    mma.add_adapter(model, "task")
    counts = mma.count_parameters(model)
    assert 0 < counts.trainable < counts.total and counts.trainable_percent < 10


# -- saving and loading --------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    tiny = hf_bert()
    mma.add_adapter(tiny.model, "task", AdapterConfig.houlsby())
    _perturb(tiny.model)
    head = nn.Linear(32, 3)
    mma.save_adapter(tiny.model, "task", tmp_path / "task", head=head)
    return tiny, head, tmp_path / "task"


def test_head_round_trips_and_name_can_be_changed(saved):
    tiny, head, folder = saved
    fresh, fresh_head = hf_bert(), nn.Linear(32, 3)
    assert mma.load_adapter(fresh.model, folder, name="renamed", head=fresh_head) == "renamed"
    assert torch.equal(fresh_head.weight, head.weight)
    assert mma.active_adapters(fresh.model) == ("renamed",)


def test_saving_over_an_existing_adapter_needs_overwrite(saved):
    tiny, _, folder = saved
    before = (folder / "adapter_model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        mma.save_adapter(tiny.model, "task", folder)
    assert (folder / "adapter_model.safetensors").read_bytes() == before
    _perturb(tiny.model)
    mma.save_adapter(tiny.model, "task", folder, overwrite=True)
    assert (folder / "adapter_model.safetensors").read_bytes() != before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["task"], (
        "no temporary folders may be left behind"
    )


def _bert(**overrides):
    from transformers import BertConfig, BertModel

    config = dict(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    return BertModel(BertConfig(**{**config, **overrides}))


@pytest.mark.parametrize(
    "make_model,message",
    [
        (lambda: FACTORIES["hf_vit"](0).model, "trained for hf_bert"),
        (lambda: _bert(hidden_size=48), "hidden 32"),
        (lambda: _bert(num_hidden_layers=3), "2 layers"),
    ],
)
def test_loading_into_another_backbone_says_what_differs(saved, make_model, message):
    _, _, folder = saved
    model = make_model()
    with pytest.raises(AdapterLoadError, match=message):
        mma.load_adapter(model, folder)
    assert not any(isinstance(m, mma.AdapterSite) for m in model.modules()), (
        "a failed load must not change the model"
    )


def test_truncated_and_corrupt_weights_give_a_clear_error(saved):
    _, _, folder = saved
    weights = folder / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterLoadError, match="truncated or corrupt"):
        mma.load_adapter(hf_bert().model, folder)
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(AdapterLoadError, match="truncated or corrupt"):
        mma.load_adapter(hf_bert().model, folder)
    weights.unlink()
    with pytest.raises(AdapterLoadError, match="missing"):
        mma.load_adapter(hf_bert().model, folder)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda doc: doc.update(extra=1), "unknown keys"),
        (lambda doc: doc["config"].update(reduction=8), "Unknown adapter config keys"),
        (lambda doc: doc["config"].update(reduction_factor=-1), "reduction_factor"),
        (lambda doc: doc.update(format="something/9"), "format"),
        (lambda doc: doc.update(name="../../escape"), "Invalid adapter name"),
    ],
)
def test_bad_config_json_gives_a_clear_error(saved, edit, message):
    _, _, folder = saved
    path = folder / "adapter_config.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        mma.load_adapter(hf_bert().model, folder)


def test_invalid_json_and_missing_folder(saved, tmp_path):
    _, _, folder = saved
    (folder / "adapter_config.json").write_text("{not json")
    with pytest.raises(AdapterLoadError, match="not valid JSON"):
        mma.load_adapter(hf_bert().model, folder)
    with pytest.raises(AdapterLoadError, match="does not exist"):
        mma.load_adapter(hf_bert().model, tmp_path / "nowhere")


def test_loading_never_unpickles(saved, tmp_path):
    """A pickle dropped in place of the weights is rejected as unreadable, never executed."""
    _, _, folder = saved
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (marker.write_text, ("executed",))

    torch.save({"x": Exploit()}, folder / "adapter_model.safetensors")
    with pytest.raises(AdapterLoadError):
        mma.load_adapter(hf_bert().model, folder)
    assert not marker.exists()


def test_folder_saved_under_a_renamed_family_still_loads(tmp_path):
    """open_clip CustomTextCLIP had its own family, open_clip_custom_text; its saved adapters load into open_clip."""
    tiny = FACTORIES["open_clip"](0)
    mma.add_adapter(tiny.model, "task", AdapterConfig.pfeiffer())
    mma.save_adapter(tiny.model, "task", tmp_path / "task")
    config_path = tmp_path / "task" / "adapter_config.json"
    document = json.loads(config_path.read_text())
    document["backbone"]["family"] = "open_clip_custom_text"
    config_path.write_text(json.dumps(document))

    fresh = FACTORIES["open_clip"](0).model
    assert mma.load_adapter(fresh, tmp_path / "task") == "task"
    document["backbone"]["family"] = "hf_bert"
    config_path.write_text(json.dumps(document))
    with pytest.raises(AdapterLoadError, match="trained for hf_bert"):
        mma.load_adapter(FACTORIES["open_clip"](0).model, tmp_path / "task")
