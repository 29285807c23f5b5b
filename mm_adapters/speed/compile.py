"""Checks that ``torch.compile`` traces adapted models in one piece."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def graph_break_reasons(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[str]:
    """Every graph break Dynamo takes while tracing ``fn(*args, **kwargs)``, each with the frames that led to it."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args, **kwargs)
    reasons = []
    for brk in explanation.break_reasons:
        frames = " <- ".join(f"{frame.filename}:{frame.lineno}" for frame in reversed(brk.user_stack))
        reasons.append(f"{brk.reason} [{frames}]")
    return reasons


def adapter_graph_breaks(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[str]:
    """The graph breaks whose innermost user frame lies inside mm_adapters (wrappers or adapter layers)."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(*args, **kwargs)
    ours = []
    for brk in explanation.break_reasons:
        if brk.user_stack and brk.user_stack[-1].filename.startswith(_PACKAGE_DIR):
            frame = brk.user_stack[-1]
            ours.append(f"{brk.reason} [{frame.filename}:{frame.lineno}]")
    return ours
