"""Hub-ready exports: the runner writes a model card beside the export (hub metadata, the run's metrics and classes,
the lines that load it, which run as written); ``mm-adapters push`` uploads that folder, pointing the card at the
repo; offline or given something that is not an export, it fails before touching anything."""

import re

import pytest
from huggingface_hub import ModelCard
from test_recipes import run
from torch import nn

import mm_adapters as mma
from mm_adapters.cli import push
from mm_adapters.io.model_card import point_card_at, write_model_card
from mm_adapters.io.upload import PushError, push_folder, upload_plan

from tiny_backbones import hf_bert


def test_a_run_s_export_carries_a_card_whose_loading_lines_run(tmp_path):
    report = run("bert_text", tmp_path)
    folder = tmp_path / "adapter"
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "mm_adapters" and "mm_adapters" in card.data.tags
    assert card.data.base_model is None  # demo-bert is no hub repo
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == report["metrics"]
    for index, name in enumerate(report["class_names"]):
        assert f"| {index} | {name} |" in card.text
    code = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    assert f'load_for_inference(backbone, "{folder}")' in code
    namespace = {}
    exec(code, namespace)  # the card's own lines: load the backbone and the export
    head = namespace["head"]
    assert isinstance(head, nn.Linear) and head.class_names == report["class_names"]


def test_card_metadata_for_a_hub_backbone_and_pointing_it_at_a_repo(tmp_path):
    write_model_card(
        tmp_path, backbone="google/vit-base-patch16-224-in21k", task="classification",
        metrics={"val_acc": 0.5}, class_names=["a", "b"], data="cifar10", recipe="vit_cifar",
    )  # fmt: skip
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "google/vit-base-patch16-224-in21k"
    assert (
        card.data.eval_results[0].dataset_name == "cifar10" and card.data.eval_results[0].metric_value == 0.5
    )
    assert point_card_at(tmp_path, "me/vit-cifar")
    card = ModelCard.load(tmp_path / "README.md")
    assert 'load_for_inference(backbone, "me/vit-cifar")' in card.text and str(tmp_path) not in card.text
    assert card.data.base_model == "google/vit-base-patch16-224-in21k"


def _export(tmp_path):
    tiny = hf_bert(0)
    mma.add_adapter(tiny.model, "task")
    folder = mma.save_adapter(tiny.model, "task", tmp_path / "export", head=nn.Linear(32, 2))
    write_model_card(folder, backbone="bert-base-uncased", metrics={"val_acc": 1.0}, data="sst2")
    (folder / ".README.md.1234.tmp").write_text("an unfinished write")
    return folder


def test_push_uploads_the_export_files_and_nothing_hidden(tmp_path, capsys):
    folder = _export(tmp_path)
    expected = ["README.md", "adapter_config.json", "adapter_model.safetensors", "head.safetensors"]
    assert upload_plan(folder) == expected
    assert push.main([str(folder), "me/bert-task", "--dry-run"]) == 0
    assert capsys.readouterr().out.split() == expected


def test_push_offline_fails_clearly_before_changing_anything(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    folder = _export(tmp_path)
    card = (folder / "README.md").read_text()
    with pytest.raises(PushError, match="HF_HUB_OFFLINE is set.*unset it"):
        push_folder(folder, "me/bert-task")
    assert (folder / "README.md").read_text() == card
    assert push.main([str(folder), "me/bert-task"]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err


def test_push_refuses_what_is_not_an_export_or_not_a_repo_id(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(PushError, match="holds no adapter, fusion or exported task \\(todo.txt\\)"):
        push_folder(tmp_path / "notes", "me/x")
    for index in range(1500):  # a data folder by mistake: five names and a count, not 1,500 names
        (tmp_path / "notes" / f"{index:04d}.jpg").write_bytes(b"")
    with pytest.raises(
        PushError, match=r"\(0000.jpg, 0001.jpg, 0002.jpg, 0003.jpg, 0004.jpg and 1,496 more\)"
    ):
        push_folder(tmp_path / "notes", "me/x")
    with pytest.raises(PushError, match="is not a folder"):
        push_folder(tmp_path / "missing", "me/x")
    with pytest.raises(PushError, match="not a hub repo id"):
        push_folder(_export(tmp_path), "me/x@main")
