"""mm_adapters against AdapterHub itself (``make interop``: the peer environment with ``adapters`` 1.3 and
transformers 4.57). For BERT, RoBERTa, ViT and CLIP and each of Pfeiffer, Houlsby, parallel, Adapter+ and a 2-adapter
fusion:
an AdapterHub-saved folder loaded here gives AdapterHub's outputs, and our ``format="adapterhub"`` folder loaded by
AdapterHub gives ours, with AdapterHub's default ``load_adapter(folder)`` and with ``use_safetensors=True``. Skipped where AdapterHub is not installed (the main environment)."""

import json

import pytest
import torch

adapters = pytest.importorskip("adapters")

from adapterhub_models import FACTORIES  # noqa: E402

import mm_adapters as mma  # noqa: E402
from mm_adapters.interop import load_adapterhub_head  # noqa: E402

FAMILIES = ["bert", "roberta", "vit", "clip"]
SETUPS = {
    "pfeiffer": "seq_bn",
    "houlsby": "double_seq_bn",
    "parallel": "par_bn",
    "adapter_plus": adapters.AdapterPlusConfig(),
    "fusion": "seq_bn",
}
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def _randomize(model, marker: str, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if marker in key:
                tensor.copy_(torch.randn_like(tensor) * 0.3)


def _ours_randomized(model, names, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for name in names:
            for tensor in mma.serialization.site_tensors(model, name).values():
                tensor.copy_(torch.randn_like(tensor) * 0.3)


def _adapterhub_model(family: str, setup: str):
    tiny = FACTORIES[family](0)
    adapters.init(tiny.model)
    names = ["a", "b"] if setup == "fusion" else ["a"]
    for index, name in enumerate(names):
        tiny.model.add_adapter(name, config=SETUPS[setup])
        _randomize(tiny.model, f".adapters.{name}.", seed=1 + index)
    if setup == "fusion":
        tiny.model.add_adapter_fusion(adapters.Fuse("a", "b"))
        _randomize(tiny.model, ".adapter_fusion_layer.a,b.", seed=7)
        tiny.model.set_active_adapters(adapters.Fuse("a", "b"))
    else:
        tiny.model.set_active_adapters("a")
    tiny.model.eval()
    return tiny, names


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("family", FAMILIES)
def test_adapterhub_folder_loaded_by_us_gives_adapterhub_outputs(tmp_path, family, setup):
    theirs, names = _adapterhub_model(family, setup)
    batch = theirs.make_batch(0)
    with torch.no_grad():
        expected = theirs.run(theirs.model, batch)
    for name in names:
        theirs.model.save_adapter(str(tmp_path / name), name)
    ours = FACTORIES[family](0)
    with torch.no_grad():
        plain = ours.run(ours.model, batch)
    for name in names:
        mma.load_adapter(ours.model, tmp_path / name)
    if setup == "fusion":
        theirs.model.save_adapter_fusion(str(tmp_path / "fusion"), "a,b")
        mma.load_fusion(ours.model, tmp_path / "fusion")
    with torch.no_grad():
        actual = ours.run(ours.model, batch)
    assert (expected - plain).abs().max() > 1e-2, "AdapterHub's adapter did not change the output"
    torch.testing.assert_close(actual, expected, **TOLERANCE)


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("family", FAMILIES)
def test_our_adapterhub_folder_loaded_by_adapterhub_gives_our_outputs(tmp_path, family, setup):
    ours = FACTORIES[family](0)
    preset = "pfeiffer" if setup == "fusion" else setup
    names = ["a", "b"] if setup == "fusion" else ["a"]
    for name in names:
        mma.add_adapter(ours.model, name, mma.AdapterConfig.preset(preset), set_active=False)
    _ours_randomized(ours.model, names, seed=3)
    if setup == "fusion":
        mma.add_fusion(ours.model, names, "a_b")
        torch.manual_seed(8)
        with torch.no_grad():
            for tensor in mma.serialization.site_tensors(ours.model, "a_b", "fusions").values():
                tensor.copy_(torch.randn_like(tensor) * 0.3)
        mma.set_active_adapters(ours.model, mma.Fuse("a", "b", name="a_b"))
    else:
        mma.set_active_adapters(ours.model, "a")
    batch = ours.make_batch(0)
    with torch.no_grad():
        expected = ours.run(ours.model, batch)
    for name in names:
        mma.save_adapter(ours.model, name, tmp_path / name, format="adapterhub")
    if setup == "fusion":
        mma.save_fusion(ours.model, "a_b", tmp_path / "fusion", format="adapterhub")
    # AdapterHub's defaults read the pytorch_*.bin we write beside the safetensors; use_safetensors=True the latter
    for options in ({}, {"use_safetensors": True}):
        theirs = FACTORIES[family](0)
        adapters.init(theirs.model)
        for name in names:
            theirs.model.load_adapter(str(tmp_path / name), **options)
        if setup == "fusion":
            theirs.model.load_adapter_fusion(str(tmp_path / "fusion"), **options)
            theirs.model.set_active_adapters(adapters.Fuse("a", "b"))
        else:
            theirs.model.set_active_adapters("a")
        theirs.model.eval()
        with torch.no_grad():
            actual = theirs.run(theirs.model, batch)
        torch.testing.assert_close(actual, expected, **TOLERANCE, msg=lambda m, o=options: f"{o}: {m}")


def test_adapterhub_classification_head_gives_adapterhub_logits(tmp_path):
    from adapters import BertAdapterModel

    tiny = FACTORIES["bert"](0)
    tiny.model.save_pretrained(tmp_path / "backbone")
    theirs = BertAdapterModel.from_pretrained(tmp_path / "backbone").eval()
    theirs.add_adapter("task", config="seq_bn")
    theirs.add_classification_head("task", num_labels=4)
    theirs.set_active_adapters("task")
    _randomize(theirs, ".adapters.task.", seed=1)
    _randomize(theirs, "heads.task.", seed=2)
    batch = tiny.make_batch(0)
    with torch.no_grad():
        expected = theirs(**batch).logits
    theirs.save_adapter(str(tmp_path / "task"), "task", with_head=True)
    mma.load_adapter(tiny.model, tmp_path / "task")
    head = load_adapterhub_head(tmp_path / "task")
    with torch.no_grad():
        torch.testing.assert_close(head(tiny.run(tiny.model, batch)[:, 0]), expected, **TOLERANCE)


@pytest.mark.parametrize("family", ["bert", "vit"])
def test_adapter_plus_config_maps_to_adapterhubs_adapter_plus_config_both_ways(tmp_path, family):
    theirs = FACTORIES[family](0)
    adapters.init(theirs.model)
    theirs.model.add_adapter("a", config=adapters.AdapterPlusConfig(reduction_factor=8))
    theirs.model.save_adapter(str(tmp_path / "theirs"), "a")
    ours = FACTORIES[family](0)
    mma.load_adapter(ours.model, tmp_path / "theirs")
    assert mma.list_adapters(ours.model)["a"] == mma.AdapterConfig.adapter_plus(reduction_factor=8)
    mma.save_adapter(ours.model, "a", tmp_path / "ours", format="adapterhub")
    saved = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())["config"]
    expected = adapters.AdapterPlusConfig(reduction_factor=8).to_dict()
    assert {k: saved[k] for k in expected if k != "architecture"} == {
        k: v for k, v in expected.items() if k != "architecture"
    }


def test_learned_scalar_scaling_loads_with_adapterhub_outputs(tmp_path):
    theirs = FACTORIES["vit"](0)
    adapters.init(theirs.model)
    theirs.model.add_adapter("a", config=adapters.SeqBnConfig(scaling="learned", reduction_factor=4))
    theirs.model.set_active_adapters("a")
    theirs.model.eval()
    _randomize(theirs.model, ".adapters.a.", seed=1)
    batch = theirs.make_batch(0)
    with torch.no_grad():
        expected = theirs.run(theirs.model, batch)
    theirs.model.save_adapter(str(tmp_path / "a"), "a")
    ours = FACTORIES["vit"](0)
    mma.load_adapter(ours.model, tmp_path / "a")
    assert mma.list_adapters(ours.model)["a"].scaling == "learned"
    with torch.no_grad():
        torch.testing.assert_close(ours.run(ours.model, batch), expected, **TOLERANCE)
