"""Adapters on the device: ONNX export with swappable task weights, an int8 backbone, and an ONNX Runtime runner.

::

    from mm_adapters.backbones import load_backbone
    from mm_adapters.onnx import OnnxTaskModel, export_onnx

    export_onnx(load_backbone("minilm"), ["runs/sst2/adapter", "runs/agnews/adapter"], "onnx/text",
                swappable=True, quantize="int8")
    model = OnnxTaskModel("onnx/text", task="sst2")
    logits = model.predict_batch(model.prepare(["a fine film"]))["sst2"]
"""

from .export import MANIFEST_FILE, export_onnx
from .runtime import OnnxTaskModel
from .tracing import TOLERANCE, OnnxExportError

__all__ = ["MANIFEST_FILE", "OnnxExportError", "OnnxTaskModel", "TOLERANCE", "export_onnx"]
