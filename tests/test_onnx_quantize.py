"""int8 backbone (adapters and heads stay fp32), and refusals: an operation ONNX cannot express, a graph that
would compute something else."""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx_exports import tiny, write_export

from mm_adapters.onnx import OnnxExportError, OnnxTaskModel, export_onnx
from mm_adapters.onnx.graphs import classifier_spec
from mm_adapters.onnx.quantize import task_nodes
from mm_adapters.onnx.tracing import export_graph


def test_int8_backbone_is_smaller_and_close_with_fp32_adapters(tmp_path):
    folder = write_export(tiny("hf_vit"), tmp_path / "export")
    out = export_onnx(tiny("hf_vit"), folder, tmp_path / "onnx", quantize="int8")
    manifest = json.loads((out / "onnx_export.json").read_text())
    sizes = manifest["file_sizes"]
    assert sizes["model.int8.onnx"] < sizes["model.onnx"]
    assert manifest["graphs"]["model"]["int8"]["quantized_nodes"] > 0

    fp32_model, int8_model = onnx.load(str(out / "model.onnx")), onnx.load(str(out / "model.int8.onnx"))
    kept = task_nodes(fp32_model)
    assert len(kept) == 5  # the adapter's down and up in both layers, and the head
    int8_nodes = {node.name: node.op_type for node in int8_model.graph.node}
    # still fp32 ops (the quantiser splits a Gemm into <name>_MatMul + <name>_Add)
    assert all("MatMul" in (int8_nodes.get(name), int8_nodes.get(f"{name}_MatMul")) or int8_nodes.get(name) == "Gemm"
               for name in kept)  # fmt: skip
    assert not any(name.startswith(tuple(kept)) and op == "MatMulInteger" for name, op in int8_nodes.items())

    size = tiny("hf_vit").image_size
    pixels = {"pixel_values": np.random.default_rng(0).standard_normal((4, 3, size, size)).astype(np.float32)}
    fp32 = OnnxTaskModel(out, precision="fp32").predict_batch(pixels)["task"]
    int8 = OnnxTaskModel(out).predict_batch(pixels)["task"]  # int8 is the default where it exists
    assert np.abs(int8 - fp32).max() <= 0.05 * np.abs(fp32).max() + 1e-3
    assert not np.array_equal(int8, fp32)


@torch.library.custom_op("mm_adapters_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.clone() * 3


@mystery.register_fake
def _(x):
    return torch.empty_like(x)


class MysteryHead(torch.nn.Linear):
    def forward(self, x):
        return mystery(super().forward(x))


class BatchOfTwoHead(torch.nn.Linear):
    """Computes something else for a batch of two: a trace at batch 2 alone would bake that in."""

    def forward(self, x):
        out = super().forward(x)
        return out * 2 if x.shape[0] == 2 else out


class CountingHead(torch.nn.Linear):
    """Scales by how often it was called (state changed inside forward): a traced graph keeps one count."""

    calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x) * self.calls


def test_an_operation_onnx_cannot_express_is_named(tmp_path):
    backbone = tiny("hf_bert")
    spec = classifier_spec(backbone, "t", MysteryHead(backbone.feature_dim, 2))
    with pytest.raises(OnnxExportError, match="mystery"):
        export_graph(spec, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (CountingHead, "differs from eager PyTorch"),
        (BatchOfTwoHead, "does not run with ONNX Runtime on .* batch 3"),
    ],
)
def test_a_graph_that_computes_something_else_is_refused(tmp_path, head, message):
    backbone = tiny("hf_bert")
    spec = classifier_spec(backbone, "t", head(backbone.feature_dim, 2))
    with pytest.raises(OnnxExportError, match=message):
        export_graph(spec, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_bad_arguments_are_refused_before_work(tmp_path):
    with pytest.raises(ValueError, match="quantize must be"):
        export_onnx(tiny("hf_bert"), tmp_path, tmp_path / "out", quantize="int4")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(tiny("hf_bert"), tmp_path / "missing", tmp_path / "out")
