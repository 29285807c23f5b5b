"""Folders saved by AdapterHub 1.3.0 (tests/fixtures/adapterhub, made by its make_fixtures.py in the peer
environment) load here, without AdapterHub, with the outputs AdapterHub computed for them."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from adapterhub_models import from_folder
from safetensors.torch import load_file

import mm_adapters as mma
from mm_adapters.errors import AdapterLoadError
from mm_adapters.interop import load_adapterhub_head

FIXTURES = Path(__file__).parent / "fixtures" / "adapterhub"


def _case(case: str, family: str):
    tiny = from_folder(family, FIXTURES / case / "backbone")
    saved = load_file(str(FIXTURES / case / "expected.safetensors"))
    batch = {k.removeprefix("input."): v for k, v in saved.items() if k.startswith("input.")}
    return tiny, batch, saved["output"]


@pytest.mark.parametrize(
    "case,family,expected_config",
    [
        ("bert_pfeiffer", "bert", mma.AdapterConfig.pfeiffer(init="bert")),
        ("vit_houlsby", "vit", mma.AdapterConfig.houlsby(init="bert")),
        ("clip_parallel", "clip", mma.AdapterConfig.parallel()),
        ("bert_adapter_plus", "bert", mma.AdapterConfig.adapter_plus()),
        ("vit_adapter_plus", "vit", mma.AdapterConfig.adapter_plus(reduction_factor=8)),
    ],
)
def test_adapterhub_folder_loads_with_adapterhub_outputs(case, family, expected_config):
    tiny, batch, expected = _case(case, family)
    with torch.no_grad():
        plain = tiny.run(tiny.model, batch)
    name = mma.load_adapter(tiny.model, FIXTURES / case / "adapter")
    assert name == "task" and mma.list_adapters(tiny.model)["task"] == expected_config
    with torch.no_grad():
        actual = tiny.run(tiny.model, batch)
    assert (plain - expected).abs().max() > 1e-2, "the fixture's adapter does not change the output"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_adapterhub_fusion_folder_loads_with_adapterhub_outputs():
    tiny, batch, expected = _case("roberta_fusion", "roberta")
    for name in ("a", "b"):
        mma.load_adapter(tiny.model, FIXTURES / "roberta_fusion" / name)
    fusion = mma.load_fusion(tiny.model, FIXTURES / "roberta_fusion" / "fusion")
    assert fusion == "a_b" and mma.list_fusions(tiny.model) == {"a_b": ("a", "b")}
    with torch.no_grad():
        torch.testing.assert_close(tiny.run(tiny.model, batch), expected, rtol=1e-5, atol=1e-5)


def test_adapterhub_classification_head_loads_as_a_module():
    tiny, batch, expected = _case("bert_head", "bert")
    mma.load_adapter(tiny.model, FIXTURES / "bert_head" / "adapter")
    head = load_adapterhub_head(FIXTURES / "bert_head" / "adapter")
    with torch.no_grad():
        logits = head(tiny.run(tiny.model, batch)[:, 0])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def _edited_copy(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "edited"
    shutil.copytree(FIXTURES / "bert_pfeiffer" / "adapter", folder)
    document = json.loads((folder / "adapter_config.json").read_text())
    edit(document)
    (folder / "adapter_config.json").write_text(json.dumps(document))
    return folder


@pytest.mark.parametrize(
    "field,value",
    [
        ("ln_before", True),
        ("ln_after", True),
        ("use_gating", True),
        ("phm_layer", True),
        ("inv_adapter", "nice"),
        ("reduction_factor", {"0": 8, "default": 16}),
        ("scaling", "per_head"),
        ("residual_before_ln", "post_add"),
        ("non_linearity", "gelu_new"),
        ("original_ln_after", False),
    ],
)
def test_unsupported_adapterhub_fields_are_refused_by_name_before_the_model_changes(tmp_path, field, value):
    folder = _edited_copy(tmp_path, lambda d: d["config"].__setitem__(field, value))
    tiny, _, _ = _case("bert_pfeiffer", "bert")
    with pytest.raises(AdapterLoadError, match=field):
        mma.load_adapter(tiny.model, folder)
    assert not mma.list_adapters(tiny.model)
    assert not any(isinstance(m, mma.AdapterSite) for m in tiny.model.modules())


def test_fusion_temperature_is_refused_by_name(tmp_path):
    folder = tmp_path / "fusion"
    shutil.copytree(FIXTURES / "roberta_fusion" / "fusion", folder)
    document = json.loads((folder / "adapter_fusion_config.json").read_text())
    document["config"]["temperature"] = True
    (folder / "adapter_fusion_config.json").write_text(json.dumps(document))
    tiny, _, _ = _case("roberta_fusion", "roberta")
    for name in ("a", "b"):
        mma.load_adapter(tiny.model, FIXTURES / "roberta_fusion" / name)
    with pytest.raises(AdapterLoadError, match="temperature"):
        mma.load_fusion(tiny.model, folder)


def test_leave_out_maps_to_layers_and_clip_numbering_to_towers(tmp_path):
    folder = tmp_path / "clip"
    shutil.copytree(FIXTURES / "clip_parallel" / "adapter", folder)
    document = json.loads((folder / "adapter_config.json").read_text())
    document["config"]["leave_out"] = [0, 1, 2]  # CLIP: text layers 0-1, then vision 2-3
    (folder / "adapter_config.json").write_text(json.dumps(document))
    tiny, _, _ = _case("clip_parallel", "clip")
    with pytest.raises(
        AdapterLoadError, match="leave_out"
    ):  # text keeps none, vision keeps layer 1: not expressible
        mma.load_adapter(tiny.model, folder)
    document["config"]["leave_out"] = [0, 1]
    (folder / "adapter_config.json").write_text(json.dumps(document))
    weights = torch.load(folder / "pytorch_adapter.bin", weights_only=True)
    torch.save(
        {k: v for k, v in weights.items() if k.startswith("vision_model.")}, folder / "pytorch_adapter.bin"
    )
    mma.load_adapter(tiny.model, folder)
    config = mma.list_adapters(tiny.model)["task"]
    assert config.towers == ("vision",) and config.layers == "all"


def test_a_pickle_that_is_not_plain_tensors_is_refused(tmp_path):
    folder = _edited_copy(tmp_path, lambda d: None)
    marker = tmp_path / "the payload ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save(
        {"encoder.layer.0.output.adapters.task.adapter_up.weight": Payload()}, folder / "pytorch_adapter.bin"
    )
    tiny, _, _ = _case("bert_pfeiffer", "bert")
    with pytest.raises(AdapterLoadError, match="plain tensors|unpickle"):
        mma.load_adapter(tiny.model, folder)
    assert not marker.exists()
