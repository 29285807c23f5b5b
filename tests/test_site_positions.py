"""Format 3 records where an adapter's sites sit; loading compares that with the spec in force. Folders of formats 1
and 2 (recorded nothing) load as before, with the outputs the code that wrote them computed."""

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mm_adapters as mma
from mm_adapters.errors import AdapterLoadError

from tiny_backbones import ALL_FACTORIES

V2 = Path(__file__).parent / "fixtures" / "mm_adapters_v2"
V2_CASES = {"bert_houlsby": "hf_bert", "vit_parallel": "hf_vit", "clip_pfeiffer": "hf_clip"}


def _saved(tmp_path, family="hf_vit", preset=mma.AdapterConfig.houlsby):
    tiny = ALL_FACTORIES[family](0)
    mma.add_adapter(tiny.model, "task", preset())
    with torch.no_grad():
        for tensor in mma.serialization.site_tensors(tiny.model, "task").values():
            tensor.normal_()
    folder = mma.save_adapter(tiny.model, "task", tmp_path / "adapter")
    batch = tiny.make_batch(0)
    with torch.no_grad():
        return folder, batch, tiny.run(tiny.model, batch)


def _edit(folder: Path, edit) -> None:
    path = folder / "adapter_config.json"
    document = json.loads(path.read_text())
    edit(document["positions"])
    path.write_text(json.dumps(document))


def test_format_3_records_blocks_module_paths_and_placement_rules(tmp_path):
    folder, batch, expected = _saved(tmp_path)
    document = json.loads((folder / "adapter_config.json").read_text())
    assert document["format"] == "mm_adapters.adapter/3"
    assert document["positions"] == {
        "vision": {
            "blocks": "layers",
            "sites": {
                "attn": {"module": "attention", "input": None, "norm": "layernorm_before", "rule": "pre"},
                "ffn": {"module": "mlp", "input": "mlp", "norm": "layernorm_after", "rule": "pre"},
            },
        }
    }
    fresh = ALL_FACTORIES["hf_vit"](0)
    mma.load_adapter(fresh.model, folder)
    with torch.no_grad():
        torch.testing.assert_close(fresh.run(fresh.model, batch), expected)


def test_a_moved_site_is_refused_saying_what_moved_and_how_to_load_anyway(tmp_path):
    folder, batch, expected = _saved(tmp_path)
    _edit(folder, lambda positions: positions["vision"]["sites"]["ffn"].update(rule="res_post"))
    fresh = ALL_FACTORIES["hf_vit"](0)
    with pytest.raises(
        AdapterLoadError,
        match=r"vision\.ffn: module 'mlp', input 'mlp', norm 'layernorm_after', rule 'res_post' -> .*'pre'.*strict=False",
    ):
        mma.load_adapter(fresh.model, folder)
    assert not any(isinstance(m, mma.AdapterSite) for m in fresh.model.modules())
    with pytest.warns(UserWarning, match="moved sites"):
        mma.load_adapter(fresh.model, folder, strict=False)
    with torch.no_grad():  # today's sites are the ones it was trained in, so the outputs are the saved ones
        torch.testing.assert_close(fresh.run(fresh.model, batch), expected)


def test_other_blocks_or_another_module_are_refused(tmp_path):
    folder, _, _ = _saved(tmp_path)
    _edit(folder, lambda positions: positions["vision"].update(blocks="encoder.blocks"))
    with pytest.raises(AdapterLoadError, match="vision blocks: 'encoder.blocks' -> 'layers'"):
        mma.load_adapter(ALL_FACTORIES["hf_vit"](0).model, folder)
    folder, _, _ = _saved(tmp_path / "2")
    _edit(folder, lambda positions: positions["vision"]["sites"]["attn"].update(module="attention.output"))
    with pytest.raises(AdapterLoadError, match="vision.attn: module 'attention.output'"):
        mma.load_adapter(ALL_FACTORIES["hf_vit"](0).model, folder)
    folder, _, _ = _saved(tmp_path / "3")  # a parallel adapter that read another module's input
    _edit(folder, lambda positions: positions["vision"]["sites"]["ffn"].update(input="mlp.fc2"))
    with pytest.raises(AdapterLoadError, match="vision.ffn: module 'mlp', input 'mlp.fc2'"):
        mma.load_adapter(ALL_FACTORIES["hf_vit"](0).model, folder)


def test_a_module_renamed_between_library_versions_is_the_same_place(tmp_path):
    """The spec lists ``layers|encoder.layer``, ``mlp|output.dense`` and ``mlp|intermediate`` (transformers 5 and 4
    names): a file recorded under the older names loads without a warning."""
    folder, batch, expected = _saved(tmp_path)

    def older_names(positions):
        positions["vision"]["blocks"] = "encoder.layer"
        positions["vision"]["sites"]["ffn"].update(module="output.dense", input="intermediate")

    _edit(folder, older_names)
    fresh = ALL_FACTORIES["hf_vit"](0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mma.load_adapter(fresh.model, folder)
    with torch.no_grad():
        torch.testing.assert_close(fresh.run(fresh.model, batch), expected)


def test_fusion_format_2_records_positions_and_checks_them(tmp_path):
    tiny = ALL_FACTORIES["hf_bert"](0)
    for name in ("a", "b"):
        mma.add_adapter(tiny.model, name, mma.AdapterConfig.pfeiffer())
    mma.add_fusion(tiny.model, ["a", "b"], "ab")
    folder = mma.save_fusion(tiny.model, "ab", tmp_path / "fusion")
    document = json.loads((folder / "fusion_config.json").read_text())
    assert (
        document["format"] == "mm_adapters.fusion/2"
        and document["positions"]["text"]["blocks"] == "encoder.layer"
    )
    document["positions"]["text"]["sites"]["ffn"]["rule"] = "pre"
    (folder / "fusion_config.json").write_text(json.dumps(document))
    mma.set_active_adapters(tiny.model, None)
    mma.delete_fusion(tiny.model, "ab")
    with pytest.raises(AdapterLoadError, match="text.ffn"):
        mma.load_fusion(tiny.model, folder)


def _v2(case: str, family: str):
    tiny = ALL_FACTORIES[family](0)
    tiny.model.load_state_dict(load_file(str(V2 / case / "backbone.safetensors")))
    saved = load_file(str(V2 / case / "expected.safetensors"))
    batch = {k.removeprefix("input."): v for k, v in saved.items() if k.startswith("input.")}
    return tiny, batch, saved["output"]


@pytest.mark.parametrize("case", V2_CASES)
def test_format_2_folders_load_with_their_old_outputs(case):
    tiny, batch, expected = _v2(case, V2_CASES[case])
    assert (
        json.loads((V2 / case / "adapter" / "adapter_config.json").read_text())["format"]
        == "mm_adapters.adapter/2"
    )
    mma.load_adapter(tiny.model, V2 / case / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(tiny.run(tiny.model, batch), expected, rtol=1e-6, atol=1e-6)


def test_format_1_fusion_folder_loads_with_its_old_outputs():
    tiny, batch, expected = _v2("bert_fusion", "hf_bert")
    for name in ("first", "second"):
        mma.load_adapter(tiny.model, V2 / "bert_fusion" / name)
    assert mma.load_fusion(tiny.model, V2 / "bert_fusion" / "fusion") == "both"
    with torch.no_grad():
        torch.testing.assert_close(tiny.run(tiny.model, batch), expected, rtol=1e-6, atol=1e-6)


def test_a_format_2_file_claiming_positions_was_edited(tmp_path):
    folder = tmp_path / "adapter"
    shutil.copytree(V2 / "bert_houlsby" / "adapter", folder)
    document = json.loads((folder / "adapter_config.json").read_text())
    document["positions"] = {}
    (folder / "adapter_config.json").write_text(json.dumps(document))
    with pytest.raises(AdapterLoadError, match="unknown keys \\['positions'\\]"):
        mma.load_adapter(ALL_FACTORIES["hf_bert"](0).model, folder)


@pytest.mark.parametrize("example", sorted(ALL_FACTORIES))
def test_every_family_records_positions_that_load_back(example):
    """Every family's positions are plain JSON and match themselves (what saving then loading checks)."""
    tiny = ALL_FACTORIES[example](0)
    spec = mma.detect_spec(tiny.model)
    positions = json.loads(json.dumps(mma.io.site_positions(tiny.model, spec)))
    assert set(positions) == set(spec.towers)
    assert all(tower["blocks"] and set(tower["sites"]) >= {"attn", "ffn"} for tower in positions.values())
    mma.io.check_positions(tiny.model, spec, positions, example)
