"""Trace one :class:`~.graphs.GraphSpec` to an ONNX file and check it against eager PyTorch.

The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) comes first; where it fails the TorchScript exporter
is tried, and the file records which one wrote it and why. Either way the graph is run with ONNX Runtime on a
random input of another batch size and length than the one traced, and refused when any output differs from
eager PyTorch by more than the tolerance: a graph that computes something else is never written.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .graphs import GraphSpec

TOLERANCE = 1e-4
"""Largest absolute difference allowed between ONNX Runtime and eager PyTorch outputs."""
DEFAULT_OPSET = 18
TRACE_BATCH, TRACE_LENGTH = 2, 8
CHECK_BATCH, CHECK_LENGTH = 3, 11


class OnnxExportError(RuntimeError):
    """The model cannot be exported to ONNX, or the exported graph does not compute what the model does."""


@dataclass
class TraceResult:
    path: Path
    exporter: str
    """``dynamo`` or ``torchscript``."""
    max_abs_diff: float
    fallback_reason: str | None = None


def export_graph(
    spec: GraphSpec,
    path: Path,
    *,
    opset: int = DEFAULT_OPSET,
    extra_inputs: dict[str, torch.Tensor] | None = None,
    extra_axes: dict[str, dict[int, str]] | None = None,
    tolerance: float = TOLERANCE,
) -> TraceResult:
    """Write ``spec`` to ``path`` and verify it. ``extra_inputs`` (the swappable task tensors) follow the raw
    inputs, in order, with ``extra_axes`` as their dynamic axes."""
    extra_inputs = extra_inputs or {}
    inputs = spec.make_inputs(TRACE_BATCH, TRACE_LENGTH) + tuple(extra_inputs.values())
    names = spec.input_names + list(extra_inputs)
    axes = {**spec.dynamic_axes, **(extra_axes or {})}
    module = spec.module.eval()
    exporter, reason = trace_module(module, inputs, names, spec.output_names, axes, path, opset, spec.name)
    check = spec.make_inputs(CHECK_BATCH, CHECK_LENGTH) + tuple(extra_inputs.values())
    try:
        diff = compare_with_eager(module, path, names, spec.output_names, check)
    except Exception as error:  # noqa: BLE001 -- ONNX Runtime rejects the graph or its dynamic axes
        path.unlink(missing_ok=True)
        raise OnnxExportError(
            f"The {exporter} export of graph {spec.name!r} does not run with ONNX Runtime on an input of batch "
            f"{CHECK_BATCH} and length {CHECK_LENGTH} (were the dynamic axes fixed while tracing?): {_summary(error)}"
        ) from error
    if not diff <= tolerance:
        path.unlink(missing_ok=True)
        raise OnnxExportError(
            f"The {exporter} export of graph {spec.name!r} differs from eager PyTorch by {diff:.3g} (max abs, "
            f"tolerance {tolerance:g}) on an input of batch {CHECK_BATCH}; refusing to write a graph that computes "
            f"something else.{' (dynamo failed: ' + reason + ')' if reason else ''}"
        )
    return TraceResult(path, exporter, diff, reason)


def trace_module(
    module, inputs, names, output_names, axes, path: Path, opset: int = DEFAULT_OPSET, label: str = "model"
) -> tuple[str, str | None]:
    """Write ``module(*inputs)`` to ``path`` with the dynamo exporter, or where it fails the TorchScript one:
    (the exporter that wrote it, why dynamo failed). Raises :class:`OnnxExportError` naming both failures."""
    try:
        _export_dynamo(module, inputs, names, output_names, axes, path, opset)
        return "dynamo", None
    except Exception as dynamo_error:  # noqa: BLE001 -- any exporter failure leads to the fallback
        reason = _summary(dynamo_error)
    try:
        _export_torchscript(module, inputs, names, output_names, axes, path, opset)
    except Exception as script_error:  # noqa: BLE001
        raise OnnxExportError(
            f"Cannot export graph {label!r} to ONNX. dynamo exporter: {reason} TorchScript exporter: "
            f"{_summary(script_error)}"
        ) from script_error
    return "torchscript", reason


def compare_with_eager(module, path: Path, names, output_names, inputs, eager_inputs=None) -> float:
    """Max absolute difference between ONNX Runtime on ``path`` fed ``inputs`` and ``module`` on
    ``eager_inputs`` (default: the same inputs)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)}
    got = session.run(list(output_names), feed)
    with torch.no_grad():
        expected = module(*(inputs if eager_inputs is None else eager_inputs))
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    diffs = [np.abs(g.astype(np.float64) - e.detach().double().numpy()).max(initial=0.0) for g, e in
             zip(got, expected, strict=True)]  # fmt: skip
    return float(max(diffs))


def _export_dynamo(module, inputs, names, output_names, axes, path: Path, opset: int) -> None:
    dims: dict[str, torch.export.Dim] = {}
    dynamic_shapes = []
    for name in names:
        spec = axes.get(name, {})
        dynamic_shapes.append({axis: dims.setdefault(label, torch.export.Dim(_identifier(label))) for axis, label in
                               spec.items()} or None)  # fmt: skip
    with _quiet():
        program = torch.onnx.export(
            module, tuple(inputs), dynamo=True, input_names=names, output_names=list(output_names),
            dynamic_shapes=(tuple(dynamic_shapes),),  # the graphs take *inputs
 opset_version=opset, verbose=False, optimize=True,
        )  # fmt: skip
        program.save(str(path))


def _export_torchscript(module, inputs, names, output_names, axes, path: Path, opset: int) -> None:
    with _quiet():
        torch.onnx.export(
            module, tuple(inputs), str(path), dynamo=False, input_names=names, output_names=list(output_names),
            dynamic_axes=axes, opset_version=opset,
        )  # fmt: skip


def _identifier(label: str) -> str:
    return re.sub(r"\W", "_", label)


_OPERATION = re.compile(r"(?:aten|prim|onnx|[a-z_]+)(?:::|\.)[A-Za-z_][\w]*(?:\.\w+)?")


def _summary(error: Exception) -> str:
    """The error's type and first lines, and the operations it names (aten.xxx, mylib::op)."""
    text = f"{type(error).__name__}: {error}"
    if "## Exception summary" in text:  # the dynamo exporter's report: its summary names the cause
        text = text.split("## Exception summary", 1)[1].split("The error above occurred", 1)[0]
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    ops = sorted({m for m in _OPERATION.findall(text) if m.startswith(("aten", "prim")) or "::" in m})
    head = " ".join(lines[:3])[:600]
    return f"{head}{' Failing operations: ' + ', '.join(ops[:8]) + '.' if ops else ''}"


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warn about axis names; keep that out of the user's console."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
