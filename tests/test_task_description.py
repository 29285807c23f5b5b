"""An export describes itself in task.json: the task, how to load its backbone again, and the preprocessing the
training used; exports written before task.json existed still load."""

import json

from mm_adapters import AdapterConfig, add_adapter
from mm_adapters.backbones import load_backbone
from mm_adapters.lightning import ClassificationModule, CTCModule, RetrievalModule, export_adapter
from mm_adapters.lightning.task_description import read_task_description


def adapted(name: str, **kwargs):
    backbone = load_backbone(name, **kwargs)
    add_adapter(backbone.model, "task", AdapterConfig.preset("pfeiffer", reduction_factor=4))
    return backbone


def test_classification_export_says_how_to_load_its_backbone_again(tmp_path):
    backbone = adapted("demo-vit", max_length=64)
    module = ClassificationModule(backbone, 3, lr=1e-2, class_names=["a", "b", "c"])
    folder = export_adapter(module, tmp_path / "adapter", details={"recipe": "vit_cifar"})
    task = read_task_description(folder)
    assert task["format"] == "mm_adapters.task/1" and task["task"] == "classification"
    assert task["inputs"] == ["image"] and task["recipe"] == "vit_cifar"
    assert task["backbone"] == {
        "name": "demo-vit",
        "pretrained": None,
        "max_length": 64,
        "family": "hf_vit",
        "seed": 0,
    }
    recorded = task["backbone"]
    again = load_backbone(
        recorded["name"], pretrained=recorded["pretrained"], max_length=recorded["max_length"]
    )
    assert task["preprocessing"]["image_size"] == again.image_size
    assert task["preprocessing"]["image_mean"] == list(again.image_mean)


def test_every_task_kind_is_recorded_with_its_inputs(tmp_path):
    ctc = CTCModule(adapted("demo-wav2vec2"), tuple("ab "), lr=1e-2)
    task = read_task_description(export_adapter(ctc, tmp_path / "ctc"))
    assert (task["task"], task["inputs"]) == ("ctc", ["audio"])
    assert task["preprocessing"]["sample_rate"] == 16000
    retrieval = RetrievalModule(adapted("demo-clip"))
    task = read_task_description(export_adapter(retrieval, tmp_path / "clip"))
    assert (task["task"], task["inputs"]) == ("retrieval", ["image", "text"])
    text = ClassificationModule(adapted("demo-bert"), 2, lr=1e-2)
    task = read_task_description(export_adapter(text, tmp_path / "text"))
    assert task["inputs"] == ["text"] and task["preprocessing"]["tokenizer"]


def test_details_fill_in_a_backbone_that_records_nothing(tmp_path):
    backbone = adapted("demo-bert")
    backbone.source = None  # built another way than load_backbone
    module = ClassificationModule(backbone, 2, lr=1e-2)
    details = {"backbone": {"name": "demo-bert", "pretrained": None, "max_length": 32}}
    task = read_task_description(export_adapter(module, tmp_path / "a", details=details))
    assert task["backbone"]["name"] == "demo-bert" and task["backbone"]["max_length"] == 32


def test_an_export_without_task_json_reads_as_none(tmp_path):
    module = ClassificationModule(adapted("demo-bert"), 2, lr=1e-2)
    folder = export_adapter(module, tmp_path / "old")
    (folder / "task.json").unlink()
    assert read_task_description(folder) is None
    assert json.loads((folder / "labels.json").read_text())["task"] == "classification"


def test_lightning_and_the_data_code_never_import_inference_or_cli():
    import ast
    from pathlib import Path

    import mm_adapters

    root = Path(mm_adapters.__file__).parent
    for package in ("lightning", "data", "backbones", "runner"):
        for path in (root / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    parts = (node.module or "").split(".")
                    top = (
                        parts[0]
                        if node.level == 2
                        else parts[1]
                        if parts[0] == "mm_adapters" and len(parts) > 1
                        else ""
                    )
                    assert top not in ("inference", "cli"), f"{path} imports {node.module}"
