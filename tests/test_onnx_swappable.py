"""Swappable task weights: one backbone graph, one small file per task, the same outputs as the baked graphs;
several exports as one multi-task graph; the export-onnx command."""

import json

import numpy as np
import pytest
from onnx_exports import tiny, write_export

from mm_adapters.backbones import load_backbone
from mm_adapters.cli import export_onnx as command
from mm_adapters.onnx import OnnxTaskModel, export_onnx
from mm_adapters.onnx.graphs import input_layout


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    backbone = tiny("hf_bert")
    return [
        write_export(backbone, root / "sst2", name="sst2", classes=2, seed=1),
        write_export(backbone, root / "agnews", name="agnews", classes=4, seed=2),
    ]


@pytest.fixture(scope="module")
def inputs():
    names, _, make = input_layout(tiny("hf_bert"), "text")
    return {name: t.numpy() for name, t in zip(names, make(3, 10), strict=True)}


def test_swappable_equals_baked_for_every_task(tmp_path, exports, inputs):
    swappable = export_onnx(tiny("hf_bert"), exports, tmp_path / "swappable", swappable=True, quantize="int8")
    files = {p.name for p in swappable.glob("*.onnx")}
    assert files == {"model.onnx", "model.int8.onnx"}  # the backbone graph is written once for both tasks
    task_files = sorted(p.name for p in (swappable / "tasks").iterdir())
    assert task_files == ["agnews.safetensors", "sst2.safetensors"]
    backbone_size = (swappable / "model.onnx").stat().st_size
    assert all((swappable / "tasks" / f).stat().st_size < backbone_size / 4 for f in task_files)

    runner = OnnxTaskModel(swappable, precision="fp32")
    for folder, task, classes in zip(exports, ["sst2", "agnews"], [2, 4], strict=True):
        baked = OnnxTaskModel(export_onnx(tiny("hf_bert"), folder, tmp_path / f"baked_{task}"))
        runner.switch_task(task)
        got = runner.predict_batch(inputs)[task]
        expected = baked.predict_batch(inputs)[task]
        assert got.shape == (3, classes)
        assert np.abs(got - expected).max() <= 1e-5
        assert runner.class_names() == [f"c{i}" for i in range(classes)]
    with pytest.raises(ValueError, match="No task 'mnli'"):
        runner.switch_task("mnli")
    int8 = OnnxTaskModel(swappable, task="agnews")  # the int8 backbone takes the same task files
    fp32 = runner.predict_batch(inputs)["agnews"]
    assert np.abs(int8.predict_batch(inputs)["agnews"] - fp32).max() <= 0.1 * np.abs(fp32).max() + 1e-3


def test_several_exports_make_one_multi_task_graph(tmp_path, exports, inputs):
    together = OnnxTaskModel(export_onnx(tiny("hf_bert"), exports, tmp_path / "parallel"))
    results = together.predict_batch(inputs)
    assert set(results) == {"sst2", "agnews"}
    for folder in exports:
        alone = OnnxTaskModel(export_onnx(tiny("hf_bert"), folder, tmp_path / folder.name))
        task = folder.name
        assert np.abs(results[task] - alone.predict_batch(inputs)[task]).max() <= 1e-5


def test_swappable_refuses_tasks_with_other_adapter_layouts(tmp_path, exports):
    import mm_adapters as mma

    other = write_export(
        tiny("hf_bert"), tmp_path / "houlsby", name="houlsby", config=mma.AdapterConfig.houlsby()
    )
    with pytest.raises(ValueError, match="same configuration"):
        export_onnx(tiny("hf_bert"), [exports[0], other], tmp_path / "out", swappable=True)


def test_command_exports_with_the_named_backbone(tmp_path, capsys):
    folder = write_export(load_backbone("demo-bert"), tmp_path / "export", name="demo")
    (folder / "task.json").unlink(missing_ok=True)  # an export from before exports described themselves
    assert command.main([str(folder), str(tmp_path / "no_backbone")]) == 2
    assert "--backbone" in capsys.readouterr().err
    assert command.main([str(folder), str(tmp_path / "onnx"), "--backbone", "demo-bert"]) == 0
    assert "model.onnx" in capsys.readouterr().out
    description = {
        "format": "mm_adapters.task/1",
        "task": "classification",
        "backbone": {"name": "demo-bert", "pretrained": None, "max_length": 64, "family": "hf_bert"},
    }
    (folder / "task.json").write_text(json.dumps(description))  # the backbone comes from task.json
    assert command.main([str(folder), str(tmp_path / "onnx")]) == 0
    manifest = json.loads((tmp_path / "onnx" / "onnx_export.json").read_text())
    assert manifest["tasks"]["demo"]["labels"]["class_names"] == ["c0", "c1", "c2"]
    assert manifest["preprocessing"]["max_length"] == 64 and manifest["backbone"]["name"] == "demo-bert"
    # the tokenizer travels with the graph: raw text in, labels out, no Python tokenizer needed
    runner = OnnxTaskModel(tmp_path / "onnx")
    prepared = runner.prepare(["a fine film", "dull"])
    assert set(prepared) == {"input_ids", "attention_mask"} and prepared["input_ids"].shape[0] == 2
    assert len(runner.labels(runner.predict_batch(prepared)["demo"])) == 2
    assert command.main([str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
