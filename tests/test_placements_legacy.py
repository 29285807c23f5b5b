"""Folders saved before placements were part of the config (format 1) load with exactly their old math.

The fixtures were written by main at 72cb436 (tests/fixtures/make_v1_fixtures.py): adapter folder, the tiny
backbone's weights, an input batch and the output that code computed.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mm_adapters as mma
from mm_adapters.errors import AdapterLoadError

from tiny_backbones import FACTORIES

FIXTURES = Path(__file__).parent / "fixtures" / "mm_adapters_v1"
CASES = {"bert_pfeiffer": "hf_bert", "vit_pfeiffer": "hf_vit", "vit_parallel": "hf_vit"}


def _backbone(case: str):
    tiny = FACTORIES[CASES[case]](0)
    tiny.model.load_state_dict(load_file(str(FIXTURES / case / "backbone.safetensors")))
    return tiny


def _expected(case: str):
    saved = load_file(str(FIXTURES / case / "expected.safetensors"))
    batch = {k.removeprefix("input."): v for k, v in saved.items() if k.startswith("input.")}
    return batch, saved["output"]


@pytest.mark.parametrize("case", CASES)
def test_format_1_folder_loads_with_its_old_outputs(case):
    tiny = _backbone(case)
    name = mma.load_adapter(tiny.model, FIXTURES / case / "adapter")
    batch, expected = _expected(case)
    with torch.no_grad():
        actual = tiny.run(tiny.model, batch)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)
    config = mma.list_adapters(tiny.model)[name]
    assert config.reads == ("sublayer_input" if config.is_parallel else "output")


def test_old_pfeiffer_math_is_houlsby_ffn_and_differs_from_the_new_pfeiffer():
    tiny = _backbone("vit_pfeiffer")
    mma.load_adapter(tiny.model, FIXTURES / "vit_pfeiffer" / "adapter")
    assert mma.list_adapters(tiny.model)["vit_pfeiffer"] == mma.AdapterConfig.houlsby_ffn()
    batch, expected = _expected("vit_pfeiffer")
    tensors = {k: v.clone() for k, v in mma.serialization.site_tensors(tiny.model, "vit_pfeiffer").items()}
    fresh = _backbone("vit_pfeiffer")
    mma.add_adapter(fresh.model, "new", mma.AdapterConfig.pfeiffer())
    with torch.no_grad():
        for key, tensor in mma.serialization.site_tensors(fresh.model, "new").items():
            tensor.copy_(tensors[key])
        assert (fresh.run(fresh.model, batch) - expected).abs().max() > 1e-2


def test_format_1_folder_with_fields_that_format_did_not_have_is_refused(tmp_path):
    folder = tmp_path / "edited"
    folder.mkdir()
    source = FIXTURES / "bert_pfeiffer" / "adapter"
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    document = json.loads((source / "adapter_config.json").read_text())
    document["config"]["reads"] = "residual_sum"
    (folder / "adapter_config.json").write_text(json.dumps(document))
    with pytest.raises(AdapterLoadError, match="reads"):
        mma.load_adapter(_backbone("bert_pfeiffer").model, folder)
