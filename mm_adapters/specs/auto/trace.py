"""Tracing one forward: which tensors each op made from which, which module produced them, and every two-tensor add
(the residual adds the automatic spec looks for)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

_ATTENTION_OPS = {
    F.scaled_dot_product_attention, F.softmax, torch.softmax, torch.Tensor.softmax, F.multi_head_attention_forward,
}  # fmt: skip
_ADD_OPS = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.__iadd__}
_ADD_OPS.add(torch.Tensor.add_)


@dataclass
class _Call:
    module: nn.Module
    input_id: int | None
    output_id: int | None = None
    start: int = 0
    end: int = 0


@dataclass
class Trace:
    parents: dict[int, list[int]] = field(default_factory=dict)
    adds: list[tuple[int, int, int, int, tuple]] = field(default_factory=list)
    """(sequence, output id, operand ids..., shape) of every two-tensor add."""
    calls: dict[int, _Call] = field(default_factory=dict)
    """First call of each module, by module id."""
    producers: dict[int, list[nn.Module]] = field(default_factory=dict)
    """Tensor id -> modules whose (first) output it is, innermost first."""
    keep: list = field(default_factory=list)
    stack: list[_Call] = field(default_factory=list)
    attention_steps: list[int] = field(default_factory=list)
    step: int = 0


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def output_vector(value) -> torch.Tensor:
    """Every floating tensor of a forward's output (all towers of a multi-tower model), flattened into one."""
    found = [t.float().flatten() for t in _tensors(value) if t.is_floating_point()]
    if not found:
        raise ValueError("the forward returned no floating-point tensor to compare")
    return torch.cat(found)


def first_tensor(value) -> torch.Tensor | None:
    found = _tensors(value)
    return found[0] if found else None


def _scores(func, args) -> bool:
    """Whether a softmax normalises attention scores, ``(..., heads, queries, keys)`` or square ``(B, N, N)``, not
    a mixture-of-experts router's ``(tokens, experts)`` / ``(B, T, experts)`` logits."""
    if func in (F.scaled_dot_product_attention, F.multi_head_attention_forward):
        return True
    logits = args[0] if args and isinstance(args[0], torch.Tensor) else None
    return logits is None or logits.dim() >= 4 or (logits.dim() == 3 and logits.shape[-1] == logits.shape[-2])


class _Recorder(TorchFunctionMode):
    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.trace = trace

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        trace = self.trace
        trace.step += 1
        inputs, outputs = _tensors((args, kwargs or {})), _tensors(out)
        for tensor in outputs:
            trace.parents.setdefault(id(tensor), [id(t) for t in inputs if t is not tensor])
        trace.keep.extend(inputs + outputs)
        if func in _ATTENTION_OPS and _scores(func, args):
            trace.attention_steps.append(trace.step)
        if func in _ADD_OPS and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]):
            a, b = args[0], args[1]
            if a.shape == b.shape and not isinstance(a, nn.Parameter) and not isinstance(b, nn.Parameter):
                trace.adds.append((trace.step, id(out), id(a), id(b), tuple(a.shape)))
        return out


def trace_forward(model: nn.Module, run: Callable[[nn.Module], object]) -> Trace:
    """Run ``run(model)`` once, recording tensor lineage, module calls and adds."""
    trace = Trace()
    handles = []

    def pre(module, args, kwargs):
        first = first_tensor((args, kwargs))
        call = _Call(module, id(first) if first is not None else None, start=trace.step)
        trace.stack.append(call)
        if id(module) not in trace.calls:
            trace.calls[id(module)] = call
        if first is not None:
            trace.keep.append(first)

    def post(module, args, kwargs, output):
        call = trace.stack.pop()
        call.end = trace.step
        first = first_tensor(output)
        if first is not None and trace.calls.get(id(module)) is call:
            call.output_id = id(first)
            trace.producers.setdefault(id(first), []).append(module)
            trace.keep.append(first)

    for module in model.modules():
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad(), _Recorder(trace):
            run(model)
    finally:
        for handle in handles:
            handle.remove()
    return trace


def views_of(trace: Trace, tensor: int | None, steps: int = 8) -> set[int]:
    """``tensor`` and the tensors it was made from by one-input ops (view, reshape, permute), nearest first."""
    found = set()
    while tensor is not None and len(found) < steps:
        found.add(tensor)
        parents = trace.parents.get(tensor, [])
        tensor = parents[0] if len(parents) == 1 else None
    return found
