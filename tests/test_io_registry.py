"""Formats are plug-ins: each registers once how to detect, load and save itself; save_adapter / load_adapter /
load_fusion / load_for_inference ask the registry. Every registered format round-trips; a new one is one file."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters.backbones import wrap_backbone
from mm_adapters.errors import AdapterLoadError
from mm_adapters.io import FileFormat, detect_format, formats, register_format, registry
from mm_adapters.lightning import load_for_inference
from mm_adapters.serialization import adapter_state_dict, copy_checked, site_tensors
from mm_adapters.state import get_state

from tiny_backbones import hf_bert

TOY_FILE = "toy_adapter.json"


# -- a format written outside the library: this is all a new format is ------------------------------------------
def _save_toy(model, name, directory, *, head, overwrite):
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=overwrite)
    tensors = {key: tensor.tolist() for key, tensor in adapter_state_dict(model, name).items()}
    document = {"name": name, "config": get_state(model).configs[name].to_dict(), "tensors": tensors}
    (folder / TOY_FILE).write_text(json.dumps(document))
    return folder


def _load_toy(model, folder, name, *, head, set_active, strict):
    document = json.loads((folder / TOY_FILE).read_text())
    name = name or document["name"]
    mma.add_adapter(model, name, mma.AdapterConfig.from_dict(document["config"]), set_active=set_active)
    tensors = {key: torch.tensor(value) for key, value in document["tensors"].items()}
    copy_checked(site_tensors(model, name), tensors, folder / TOY_FILE, "does not fit")
    return name


TOY = FileFormat(
    "toy", "adapter", lambda folder: (folder / TOY_FILE).is_file(), _load_toy, _save_toy, (TOY_FILE,)
)


@pytest.fixture
def restore_registry():
    saved = dict(registry._FORMATS)
    yield
    registry._FORMATS.clear()
    registry._FORMATS.update(saved)


def _trained(names=("a",), preset=mma.AdapterConfig.pfeiffer):
    tiny = hf_bert(0)
    torch.manual_seed(3)
    for name in names:
        mma.add_adapter(tiny.model, name, preset())
        with torch.no_grad():
            for tensor in site_tensors(tiny.model, name).values():
                tensor.normal_(std=0.3)
    return tiny


def _output(tiny, model=None):
    with torch.no_grad():
        return tiny.run(model if model is not None else tiny.model, tiny.make_batch(0))


def test_a_new_format_is_one_registration(tmp_path, restore_registry):
    register_format(TOY)
    tiny = _trained()
    expected = _output(tiny)
    folder = mma.save_adapter(tiny.model, "a", tmp_path / "toy", format="toy")
    assert detect_format(folder, "adapter") is TOY
    fresh = hf_bert(0)
    assert mma.load_adapter(fresh.model, folder) == "a"
    torch.testing.assert_close(_output(fresh), expected)


def test_an_unknown_format_names_the_known_ones(tmp_path):
    tiny = _trained()
    with pytest.raises(
        ValueError, match=r"Unknown adapter format 'peft'; known: \['adapterhub', 'mm_adapters'\]"
    ):
        mma.save_adapter(tiny.model, "a", tmp_path / "x", format="peft")


@pytest.mark.parametrize("file_format", [f.name for f in formats("adapter")])
def test_every_adapter_format_round_trips(tmp_path, file_format):
    tiny = _trained()
    expected = _output(tiny)
    folder = mma.save_adapter(tiny.model, "a", tmp_path / file_format, format=file_format)
    assert detect_format(folder, "adapter").name == file_format
    fresh = hf_bert(0)
    mma.load_adapter(fresh.model, folder)
    torch.testing.assert_close(_output(fresh), expected)


@pytest.mark.parametrize("file_format", [f.name for f in formats("fusion")])
def test_every_fusion_format_round_trips(tmp_path, file_format):
    tiny = _trained(("a", "b"))
    mma.add_fusion(tiny.model, ["a", "b"], "a_b")
    with torch.no_grad():
        for tensor in site_tensors(tiny.model, "a_b", "fusions").values():
            tensor.normal_(std=0.3)
    expected = _output(tiny)
    for name in ("a", "b"):
        mma.save_adapter(tiny.model, name, tmp_path / name, format=file_format)
    folder = mma.save_fusion(tiny.model, "a_b", tmp_path / "fusion", format=file_format)
    assert detect_format(folder, "fusion").name == file_format
    fresh = hf_bert(0)
    for name in ("a", "b"):
        mma.load_adapter(fresh.model, tmp_path / name)
    assert mma.load_fusion(fresh.model, folder) == "a_b"
    torch.testing.assert_close(_output(fresh), expected)


def test_the_task_export_format_round_trips_with_its_head_and_labels(tmp_path):
    tiny = _trained()
    head = nn.Linear(32, 3)
    folder = mma.save_adapter(tiny.model, "a", tmp_path / "export", head=head)
    (folder / "labels.json").write_text(
        json.dumps({"task": "classification", "class_names": ["x", "y", "z"]})
    )
    assert detect_format(folder, "task").name == "mm_adapters"
    backbone = wrap_backbone(hf_bert(0).model)
    loaded = load_for_inference(backbone, folder)
    assert loaded.class_names == ["x", "y", "z"]
    torch.testing.assert_close(loaded.weight, head.weight)
    torch.testing.assert_close(_output(tiny, backbone.model), _output(tiny))


def test_the_adapterhub_head_format_is_registered():
    folder = Path(__file__).parent / "fixtures" / "adapterhub" / "bert_head" / "adapter"
    head = detect_format(folder, "head").load(folder)
    assert isinstance(head, nn.Sequential) and head[-1].out_features > 0


def test_a_folder_no_format_recognises_gets_the_default_format_s_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterLoadError, match="has no adapter_config.json"):
        mma.load_adapter(hf_bert(0).model, tmp_path / "empty")
    with pytest.raises(AdapterLoadError, match="does not exist"):
        mma.load_adapter(hf_bert(0).model, tmp_path / "missing")


def test_adapterhub_folders_carry_the_bin_adapterhub_reads_by_default(tmp_path):
    from safetensors.torch import load_file

    tiny = _trained()
    expected = _output(tiny)
    folder = mma.save_adapter(tiny.model, "a", tmp_path / "hub", format="adapterhub")
    pickled = torch.load(folder / "pytorch_adapter.bin", weights_only=True)
    safe = load_file(str(folder / "adapter.safetensors"))
    assert sorted(pickled) == sorted(safe) and all(torch.equal(pickled[k], safe[k]) for k in safe)
    lean = mma.save_adapter(tiny.model, "a", tmp_path / "lean", format="adapterhub", pickled_copy=False)
    assert sorted(p.name for p in lean.iterdir()) == ["adapter.safetensors", "adapter_config.json"]
    (folder / "adapter.safetensors").unlink()  # the .bin is read only when a folder has no safetensors
    fresh = hf_bert(0)
    mma.load_adapter(fresh.model, folder)
    torch.testing.assert_close(_output(fresh), expected)
