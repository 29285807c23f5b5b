"""The sweep's ONNX column (issue 20): does a model that passes, adapted, export to ONNX, and does ONNX Runtime
compute what eager PyTorch does?

The model gets a Pfeiffer adapter with non-zero weights. Every top-level call the sweep's ``run`` makes on it
(``forward``, ``forward_features``, ``encode_image``, ``encode_text``) is recorded with its inputs and traced the way
``export_onnx`` traces (:func:`mm_adapters.onnx.tracing.trace_module`: dynamo first, TorchScript where it fails),
the batch axis of every input dynamic; ONNX Runtime then runs it on the first row of the recorded inputs (another
batch size than the one traced) and every floating-point output must equal eager PyTorch within
:data:`~mm_adapters.onnx.tracing.TOLERANCE` (max abs). The column reads ``yes`` or ``no: <why>``."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..config import AdapterConfig
from ..injection import add_adapter
from ..state import iter_sites
from .hf_inputs import float_tensors

ENTRY_POINTS = ("forward", "forward_features", "encode_image", "encode_text")
"""The methods the sweep's ``run`` functions call on a model; each top-level call becomes one graph."""
YES = "yes"


def check_onnx(model: nn.Module, run: Callable[[nn.Module], torch.Tensor]) -> str:
    """``yes``, or ``no: `` and the first reason a graph of ``model`` (adapted) fails to export or to match."""
    from ..onnx.tracing import OnnxExportError

    adapted = copy.deepcopy(model).eval()
    add_adapter(adapted, "onnx", AdapterConfig.pfeiffer())
    _nonzero_adapters(adapted)
    try:
        calls = _recorded_calls(adapted, run)
        with tempfile.TemporaryDirectory() as folder:
            for index, (method, args, kwargs) in enumerate(calls):
                _export_and_compare(_Call(adapted, method, args, kwargs), Path(folder) / f"graph{index}.onnx")
    except OnnxExportError as error:
        return f"no: {str(error)[:1200]}"
    except Exception as error:  # noqa: BLE001 -- the sweep reports every failure and goes on
        return f"no: {type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
    return YES


def _nonzero_adapters(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for site in iter_sites(model):
            for adapter in site.adapters.values():
                for parameter in adapter.parameters():
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


def _recorded_calls(model: nn.Module, run) -> list[tuple[str, tuple, dict]]:
    """(method, args, kwargs) of each top-level call ``run(model)`` makes (calls made inside one are not)."""
    calls: list[tuple[str, tuple, dict]] = []
    depth = [0]

    def recording(name: str, method):
        def call(*args, **kwargs):
            if depth[0] == 0:
                calls.append((name, args, kwargs))
            depth[0] += 1
            try:
                return method(*args, **kwargs)
            finally:
                depth[0] -= 1

        return call

    patched = [name for name in ENTRY_POINTS if callable(getattr(model, name, None))]
    for name in patched:
        setattr(model, name, recording(name, getattr(model, name)))
    try:
        with torch.no_grad():
            run(model)
    finally:
        for name in patched:
            delattr(model, name)
    if not calls:
        raise RuntimeError("the sweep's run makes no call to record")
    return calls


class _Call(nn.Module):
    """One recorded call as a module whose inputs are the call's tensor arguments and whose outputs are every
    floating-point tensor the call returns."""

    def __init__(self, model: nn.Module, method: str, args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.model, self.method = model, method
        self.args, self.kwargs = args, kwargs
        self.slots = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        self.keys = [k for k, v in kwargs.items() if isinstance(v, torch.Tensor)]
        self.inputs = tuple(args[i] for i in self.slots) + tuple(kwargs[k] for k in self.keys)
        self.names = [f"arg{i}" for i in self.slots] + list(self.keys)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        args = list(self.args)
        for slot, tensor in zip(self.slots, tensors[: len(self.slots)], strict=True):
            args[slot] = tensor
        kwargs = {**self.kwargs, **dict(zip(self.keys, tensors[len(self.slots) :], strict=True))}
        return tuple(float_tensors(getattr(self.model, self.method)(*args, **kwargs)))


def _export_and_compare(call: _Call, path: Path) -> None:
    from ..onnx.tracing import TOLERANCE, OnnxExportError, compare_with_eager, trace_module

    with torch.no_grad():
        outputs = call(*call.inputs)
    if not outputs:
        raise RuntimeError(f"{call.method} returns no floating-point tensor")
    output_names = [f"output{i}" for i in range(len(outputs))]
    batch = call.inputs[0].shape[0] if call.inputs and call.inputs[0].dim() else None
    axes = {
        name: {0: "batch"}
        for name, tensor in zip(call.names, call.inputs, strict=True)
        if batch and tensor.dim() and tensor.shape[0] == batch
    }
    exporter, _ = trace_module(call, call.inputs, call.names, output_names, axes, path, label=call.method)
    one_row = tuple(t[:1] if n in axes else t for n, t in zip(call.names, call.inputs, strict=True))
    diff = compare_with_eager(call, path, call.names, output_names, one_row)
    if not diff <= TOLERANCE:
        raise OnnxExportError(
            f"the {exporter} graph of {call.method} differs from eager PyTorch by {diff:.3g} (max abs) on one row"
        )
