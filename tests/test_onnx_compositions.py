"""Fusion, Stack and AdapterDrop setups export to ONNX with the outputs they have in PyTorch."""

import numpy as np
import torch
from onnx_exports import randomize, tiny

import mm_adapters as mma
from mm_adapters.onnx import OnnxTaskModel, export_onnx
from mm_adapters.onnx.graphs import classifier_spec, input_layout
from mm_adapters.onnx.tracing import compare_with_eager, export_graph

CONFIG = mma.AdapterConfig.pfeiffer(reduction_factor=4)


def text_inputs(seed=0):
    names, _, make = input_layout(tiny("hf_bert"), "text")
    torch.manual_seed(seed)
    return names, make(3, 9)


def test_fusion_exports_with_the_fused_adapters(tmp_path):
    backbone = tiny("hf_bert")
    for name in ("a", "b"):
        mma.add_adapter(backbone.model, name, CONFIG)
    fusion = mma.add_fusion(backbone.model, ["a", "b"])
    head = torch.nn.Linear(backbone.feature_dim, 3)
    holder = torch.nn.ModuleDict({"backbone": backbone, "head": head})
    randomize(backbone.model, seed=3)
    randomize(torch.nn.ModuleDict({"head": head}), seed=4)
    for name in ("a", "b"):
        mma.save_adapter(backbone.model, name, tmp_path / name)
    mma.save_fusion(backbone.model, fusion, tmp_path / "fusion", head=head)
    assert any(".fusions." in n for n, _ in holder.named_parameters())

    out = export_onnx(
        tiny("hf_bert"), tmp_path / "fusion", tmp_path / "onnx", adapters=[tmp_path / "a", tmp_path / "b"]
    )
    names, inputs = text_inputs()
    got = OnnxTaskModel(out).predict_batch(dict(zip(names, inputs, strict=True)))[fusion]
    backbone.eval()
    with torch.no_grad():
        expected = head(backbone(dict(zip(names, inputs, strict=True))))
        mma.set_active_adapters(backbone.model, "a")
        adapter_a_only = head(backbone(dict(zip(names, inputs, strict=True))))
    assert np.abs(got - expected.numpy()).max() <= 1e-4
    assert np.abs(got - adapter_a_only.numpy()).max() > 1e-3  # the fusion, not one adapter, is in the graph


def _export_setup(tmp_path, setup, drop=0):
    backbone = tiny("hf_bert")
    for name in ("a", "b"):
        mma.add_adapter(backbone.model, name, CONFIG)
    randomize(backbone.model, seed=5)
    mma.set_active_adapters(backbone.model, setup)
    if drop:
        mma.set_adapter_drop(backbone.model, drop)
    head = torch.nn.Linear(backbone.feature_dim, 2)
    spec = classifier_spec(backbone.eval(), "t", head)
    result = export_graph(spec, tmp_path / "model.onnx")
    names, inputs = text_inputs(seed=7)
    return spec, result, compare_with_eager(spec.module, result.path, names, spec.output_names, inputs)


def test_stack_exports_with_its_outputs(tmp_path):
    spec, result, diff = _export_setup(tmp_path, mma.Stack("a", "b"))
    assert result.max_abs_diff <= 1e-4 and diff <= 1e-4
    with torch.no_grad():
        names, inputs = text_inputs(seed=7)
        stacked = spec.module(*inputs)
        mma.set_active_adapters(spec.module.backbone.model, "a")
        single = spec.module(*inputs)
    assert (stacked - single).abs().max() > 1e-3


def test_adapter_drop_exports_with_its_outputs(tmp_path):
    spec, result, diff = _export_setup(tmp_path, "a", drop=1)
    assert result.max_abs_diff <= 1e-4 and diff <= 1e-4
    names, inputs = text_inputs(seed=7)
    import onnxruntime as ort

    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    dropped = session.run(None, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})[0]
    mma.set_adapter_drop(spec.module.backbone.model, 0)
    with torch.no_grad():
        full = spec.module(*inputs).numpy()
    assert np.abs(dropped - full).max() > 1e-3  # the dropped layer runs without its adapter in the graph
