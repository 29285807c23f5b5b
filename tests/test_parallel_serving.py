"""Serving several exported tasks from one backbone: every task's predictions for a batch in one pass."""

import pytest
import torch
from torch import nn

import mm_adapters as mma
from mm_adapters.backbones.text import HFTextBackbone
from mm_adapters.backbones.vision import TimmViTBackbone
from mm_adapters.lightning import MultiTaskPredictor, load_for_inference
from mm_adapters.state import iter_sites

from tiny_backbones import hf_bert, timm_vit

CLASSES = {"sst2": 2, "topic": 4, "nli": 3}


def _export(tmp_path, wrap, factory, names, drop=0, seed=0):
    """Train-free stand-ins for exported tasks: random adapters and heads saved per task; returns the folders
    and each task's logits when run alone."""
    backbone = wrap(factory(0).model.requires_grad_(False))
    folders, heads = [], {}
    for index, name in enumerate(names):
        torch.manual_seed(10 * seed + index)
        mma.add_adapter(backbone.model, name)
        heads[name] = nn.Linear(backbone.feature_dim, CLASSES[name])
    with torch.no_grad():
        for site in iter_sites(backbone.model):
            for adapter in site.adapters.values():
                adapter.up.weight.normal_(0, 0.5)
    for name in names:
        folders.append(mma.save_adapter(backbone.model, name, tmp_path / name, head=heads[name]))

    def alone(batch):
        results = {}
        with torch.no_grad():
            for name in names:
                mma.set_active_adapters(backbone.model, name)
                mma.set_adapter_drop(backbone.model, drop)
                results[name] = heads[name](backbone(batch))
        return results

    return folders, alone


def _text_batch():
    ids = torch.randint(1, 100, (3, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0  # padding: the pooling mask must follow the replicated rows
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("drop", [0, 1])
def test_every_task_from_one_pass_equals_each_alone(tmp_path, drop):
    folders, alone = _export(tmp_path, HFTextBackbone, hf_bert, ["sst2", "topic", "nli"], drop)
    batch = _text_batch()
    expected = alone(batch)
    backbone = HFTextBackbone(hf_bert(0).model)  # a fresh copy of the same backbone
    predict = load_for_inference(
        backbone, folders, class_names={"sst2": ["negative", "positive"]}, drop_layers=drop
    )
    assert isinstance(predict, MultiTaskPredictor) and predict.tasks == ("sst2", "topic", "nli")
    calls = []
    backbone.model.embeddings.register_forward_hook(lambda *args: calls.append(1))
    results = predict(batch)
    assert len(calls) == 1  # one backbone pass for all tasks
    for name in CLASSES:
        torch.testing.assert_close(results[name].logits, expected[name], rtol=1e-5, atol=1e-5)
        assert results[name].logits.shape == (3, CLASSES[name])
    assert results["sst2"].labels == [
        ["negative", "positive"][i] for i in expected["sst2"].argmax(-1).tolist()
    ]
    assert results["topic"].labels == expected["topic"].argmax(-1).tolist()  # no class names: ids


def test_image_tasks_and_renaming_clashing_exports(tmp_path):
    first, _ = _export(tmp_path / "one", TimmViTBackbone, timm_vit, ["sst2"])
    second, _ = _export(tmp_path / "two", TimmViTBackbone, timm_vit, ["sst2"], seed=1)
    backbone = TimmViTBackbone(timm_vit(0).model)
    with pytest.raises(ValueError, match="pass names="):
        load_for_inference(backbone, first + second)
    predict = load_for_inference(backbone, first + second, names=["left", "right"])
    results = predict({"pixel_values": torch.randn(2, 3, 32, 32)})
    assert set(results) == {"left", "right"}
    assert results["left"].logits.shape == (2, 2)
    assert not torch.allclose(results["left"].logits, results["right"].logits)


def test_one_folder_still_returns_its_head(tmp_path):
    folders, alone = _export(tmp_path, HFTextBackbone, hf_bert, ["topic"])
    backbone = HFTextBackbone(hf_bert(0).model)
    head = load_for_inference(backbone, folders[0])
    assert isinstance(head, nn.Linear) and head.out_features == 4
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        load_for_inference(backbone, [tmp_path / "missing", folders[0]])
