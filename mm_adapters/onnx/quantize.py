"""int8 backbone: ONNX Runtime dynamic quantisation of the frozen backbone's MatMul/Gemm weights (per output
channel: on the MiniLM SST-2 adapter per-tensor scales lost 0.8 points of accuracy, per-channel none).

Adapter, fusion and head nodes stay fp32: they are found by the module scope the exporter records on every node
(``namespace`` metadata) and passed as ``nodes_to_exclude``. In a swappable graph the task weights are graph
inputs, which dynamic quantisation leaves alone anyway (it quantises constant weights only).
"""

from __future__ import annotations

from pathlib import Path

import onnx

from .task_weights import is_task_parameter

QUANTIZED_OPS = ("MatMul", "Gemm")


def task_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul/Gemm nodes that belong to an adapter, fusion or head."""
    found = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        scope = {p.key: p.value for p in node.metadata_props}.get("namespace")
        if scope is not None:  # dynamo: "graph: cls/graph.backbone: cls/..."
            modules = [part.split(":")[0].strip() for part in scope.split("/")]
        else:  # TorchScript names nodes by their scope: "/backbone/model/.../adapters.a/down/MatMul"
            modules = [node.name.strip("/").replace("/", ".")]
        if any(is_task_parameter(_without_graph(module) + ".weight") for module in modules if module):
            found.append(node.name)
    return found


def _without_graph(module: str) -> str:
    """``inner.backbone.model...`` (inside a swappable graph's wrapper) -> ``backbone.model...``."""
    return module.removeprefix("inner.")


def quantize_int8(source: Path, target: Path) -> dict[str, int]:
    """Write the int8 copy of ``source`` to ``target``; returns how many matmul nodes were quantised and kept."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    excluded = task_nodes(model)
    # the quantiser first splits a Gemm into "<name>_MatMul" + "<name>_Add"; keep those out too
    excluded += [f"{name}_MatMul" for name in excluded]
    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
        nodes_to_exclude=excluded, extra_options={"MatMulConstBOnly": True},
    )  # fmt: skip
    quantized = onnx.load(str(target))
    integer_ops = sum(
        node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in quantized.graph.node
    )
    return {"quantized_nodes": integer_ops, "fp32_task_nodes": len(task_nodes(model))}
