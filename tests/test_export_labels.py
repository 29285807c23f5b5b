"""An exported adapter carries what maps its head's ids to names: class names, or the CTC vocabulary."""

import json

import lightning as L
import torch
from test_lightning import adapted, loader, rows

from mm_adapters.backbones import wrap_backbone
from mm_adapters.lightning import ClassificationModule, CTCModule, export_adapter, load_for_inference

from tiny_backbones import FACTORIES

NAMES = ["cat", "dog", "emu"]


def fit(module, family):
    L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0).fit(module, loader(rows(family)))  # fmt: skip


def test_classification_head_comes_back_with_its_class_names(tmp_path):
    module = ClassificationModule(adapted("hf_vit"), len(NAMES), lr=1e-2, class_names=NAMES)
    fit(module, "hf_vit")
    folder = export_adapter(module, tmp_path / "adapter")
    assert json.loads((folder / "labels.json").read_text()) == {
        "task": "classification",
        "class_names": NAMES,
    }
    backbone = wrap_backbone(FACTORIES["hf_vit"](0).model)
    head = load_for_inference(backbone, folder)
    batch = next(iter(loader(rows("hf_vit"))))
    with torch.no_grad():
        predicted = head(backbone(batch)).argmax(dim=-1)
    module.eval()
    with torch.no_grad():
        expected = module(batch).argmax(dim=-1)
    assert [head.class_names[i] for i in predicted] == [NAMES[i] for i in expected]


def test_ctc_head_comes_back_with_its_vocabulary(tmp_path):
    chars = tuple("abcdefgh ")
    module = CTCModule(adapted("hf_wav2vec2"), chars, lr=1e-2)
    folder = export_adapter(module, tmp_path / "asr")
    labels = json.loads((folder / "labels.json").read_text())
    assert labels == {"task": "ctc", "blank_id": 0, "vocabulary": list(chars)}
    head = load_for_inference(wrap_backbone(FACTORIES["hf_wav2vec2"](0).model), folder)
    assert head.vocabulary.chars == chars and head.vocabulary.decode_ctc([0, 1, 1, 0, 2]) == "ab"
