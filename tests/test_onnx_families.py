"""Every recipe family exports to ONNX, and ONNX Runtime gives what eager PyTorch gives (max abs <= 1e-4)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx_exports import tiny, write_export

from mm_adapters.lightning import load_for_inference
from mm_adapters.onnx import OnnxTaskModel, export_onnx
from mm_adapters.onnx.graphs import input_layout, modality_of

CASES = [
    ("hf_bert", "classification"),
    ("hf_vit", "classification"),
    ("timm_vit", "classification"),
    ("hf_wav2vec2", "classification"),
    ("hf_hubert", "classification"),
    ("hf_wavlm", "classification"),
    ("hf_whisper", "classification"),
    ("hf_wav2vec2", "ctc"),
    ("hf_clip", "retrieval"),
    ("open_clip", "retrieval"),
]


def eager(backbone, head, kind, inputs, tower=None):
    batch = {name: torch.from_numpy(value) for name, value in inputs.items()}
    with torch.no_grad():
        if kind == "classification":
            return {"logits": head(backbone(batch))}
        if kind == "ctc":
            hidden, lengths = backbone.frames(batch)
            return {"logits": head(hidden), "lengths": lengths}
        if tower == "image":
            return {"image_embeds": backbone.encode_image(batch["pixel_values"])}
        return {"text_embeds": backbone.encode_text(batch)}


@pytest.mark.parametrize(("family", "kind"), CASES, ids=[f"{f}-{k}" for f, k in CASES])
def test_family_exports_and_matches_eager(tmp_path, family, kind):
    folder = write_export(tiny(family), tmp_path / "export", kind=kind, name="task")
    out = export_onnx(tiny(family), folder, tmp_path / "onnx")
    manifest = json.loads((out / "onnx_export.json").read_text())
    assert manifest["tasks"]["task"]["kind"] == kind
    for graph in manifest["graphs"].values():
        assert graph["exporter"] in ("dynamo", "torchscript") and graph["max_abs_diff"] <= 1e-4
    assert (out / "preprocessing.json").is_file()

    reference = tiny(family)  # a fresh backbone, loaded the public way
    head = load_for_inference(reference, folder)
    runner = OnnxTaskModel(out)
    towers = ["image", "text"] if kind == "retrieval" else [None]
    for tower in towers:
        modality = tower or modality_of(reference)
        _, _, make = input_layout(reference, modality)
        names = manifest["graphs"][tower or "model"]["inputs"]
        inputs = {name: tensor.numpy() for name, tensor in zip(names, make(4, 13), strict=True)}
        got = runner.predict_batch(inputs)
        expected = eager(reference, head, kind, inputs, tower)
        if kind == "retrieval":
            output = f"{tower}_embeds"
            assert np.abs(got["task"][output] - expected[output].numpy()).max() <= 1e-4
            assert np.allclose(np.linalg.norm(got["task"][output], axis=-1), 1.0, atol=1e-4)
        else:
            assert got["task"].shape == tuple(expected["logits"].shape)
            assert np.abs(got["task"] - expected["logits"].numpy()).max() <= 1e-4
            assert expected["logits"].abs().max() > 1e-3  # the adapter and head do something
        if kind == "ctc":
            assert np.array_equal(got["task.lengths"], expected["lengths"].numpy())
    if kind == "classification":
        assert runner.labels(got["task"]) == [f"c{i}" for i in expected["logits"].argmax(-1).tolist()]


def test_exported_graph_follows_the_adapter(tmp_path):
    """Two exports differing only in adapter weights give different ONNX outputs (the adapter is in the graph)."""
    outputs = []
    for seed in (1, 2):
        folder = write_export(tiny("hf_vit"), tmp_path / f"e{seed}", seed=seed)
        out = export_onnx(tiny("hf_vit"), folder, tmp_path / f"o{seed}")
        pixels = torch.randn(
            2,
            3,
            tiny("hf_vit").image_size,
            tiny("hf_vit").image_size,
            generator=torch.Generator().manual_seed(0),
        )
        outputs.append(OnnxTaskModel(out).predict_batch({"pixel_values": pixels})["task"])
    assert F.mse_loss(torch.from_numpy(outputs[0]), torch.from_numpy(outputs[1])) > 1e-6
