"""What every module that stands in for a backbone's sublayer shares (adapter sites, taps, checkpointed and cached
layers, the automatic spec's probes): attribute reads fall through to the wrapped module, and a wrapper that changes
the output keeps a fused parent from skipping it. No imports from the rest of the package (specs and site use it)."""

from __future__ import annotations

from typing import Any

from torch import nn


def _keeps_parent_on_its_python_path(module: nn.Module, args: tuple) -> None:
    """A forward pre-hook that does nothing. A parent with a fused fast path (torch's ``nn.TransformerEncoderLayer``
    in eval / no_grad) reads its children's weights and skips calling them unless one of its modules has a hook;
    while a site's adapters run, this hook on the site keeps that parent calling it. Local to the sites that hold
    active adapters: no global switch, and the base model keeps its fast path when no adapter is active."""
    return None


def hold_parents_off_fused_paths(module: nn.Module, hold: bool) -> None:
    """Add (``hold``) or remove :func:`_keeps_parent_on_its_python_path` on ``module``, once. The hook is found by
    identity (not by a handle), so deep copies and unpickled models stay consistent."""
    hooks = module._forward_pre_hooks
    keys = [key for key, hook in hooks.items() if hook is _keeps_parent_on_its_python_path]
    if hold and not keys:
        module.register_forward_pre_hook(_keeps_parent_on_its_python_path)
    for key in keys if not hold else ():
        del hooks[key]


class PassThrough(nn.Module):
    """Holds ``base_layer`` and lets attribute reads fall through to it, so upstream code that reads
    ``block.mlp.fc1.weight`` or ``attn.batch_first`` keeps working."""

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_layer, name)
