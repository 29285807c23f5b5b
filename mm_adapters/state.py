"""Bookkeeping that an adapted model carries: its spec and the configs of its adapters.

It lives on the model object (like peft's ``peft_config``); it is never read or written inside ``forward``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .config import AdapterConfig
from .io.signature import backbone_signature  # noqa: F401  (its home is mm_adapters.io; imported from here before)
from .site import AdapterSite
from .specs import BackboneSpec, detect_spec, tower_blocks

_STATE_ATTR = "_mm_adapters_state"
_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


@dataclass
class AdapterState:
    spec: BackboneSpec
    configs: dict[str, AdapterConfig] = field(default_factory=dict)
    active: tuple[str, ...] = ()
    """Every adapter the forward pass uses (for a composition: all the adapters it names)."""
    composition: Any = None
    """The active composition block (``mm_adapters.Fuse``, ``BatchSplit``, ``Parallel``), or None when ``active``
    is stacked."""
    hooks: list = field(default_factory=list)
    """Hook handles the active composition installed (``Parallel`` replicates the batch with them); removed when
    another setup is activated."""
    fusions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """AdapterFusion layers: fusion name -> the adapters it fuses, in weight order."""
    shared: dict[str, str] = field(default_factory=dict)
    """Cross-modal adapters whose towers share parameters: adapter name -> share mode (e.g. ``"middle"``)."""

    def remove_hooks(self) -> None:
        """Remove what the previous composition installed (call after checking the new setup, before applying it)."""
        for handle in self.hooks:
            handle.remove()
        self.hooks.clear()

    @property
    def setup(self) -> Any:
        """What to pass to ``set_active_adapters`` to restore the current setup."""
        return self.composition if self.composition is not None else self.active


def get_state(
    model: nn.Module, spec: BackboneSpec | None = None, create: bool = False, example_inputs=None
) -> AdapterState:
    state = model.__dict__.get(_STATE_ATTR)
    if state is None:
        if not create:
            raise ValueError(
                f"{type(model).__name__} has no adapters; add one first with mm_adapters.add_adapter."
            )
        state = AdapterState(spec=spec or detect_spec(model, example_inputs=example_inputs))
        model.__dict__[_STATE_ATTR] = state
    elif spec is not None and spec.family != state.spec.family:
        raise ValueError(
            f"This model was adapted with spec {state.spec.family!r}; cannot switch to {spec.family!r}."
        )
    return state


def has_adapters(model: nn.Module) -> bool:
    return _STATE_ATTR in model.__dict__


def check_name(name: object) -> str:
    """Adapter names become module keys and folder names: keep them short identifiers."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"Invalid adapter name {name!r}: use 1-64 letters, digits, '_' or '-', starting with a letter or '_' "
            "(it becomes a module key and a file name, so no dots, slashes or spaces)."
        )
    return name


def iter_sites(model: nn.Module):
    """Every adapter site in the model, in module order (``model.modules()``'s), without walking the sites' own
    adapters and fusion layers: with 1,000 adapters loaded they are nearly all of the model's modules, and switching
    task would walk them all."""
    seen: set[int] = set()
    pending = [model]
    while pending:
        module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        skipped: tuple[nn.Module, ...] = ()
        if isinstance(module, AdapterSite):
            yield module
            skipped = (module.adapters, module.fusions)
        children = [c for c in module._modules.values() if c is not None and all(c is not s for s in skipped)]
        pending.extend(reversed(children))


def tower_layers(model: nn.Module, spec: BackboneSpec) -> dict[str, list[nn.Module] | nn.ModuleList]:
    """Each tower's blocks (:func:`mm_adapters.specs.tower_blocks`)."""
    return {name: tower_blocks(model, tower) for name, tower in spec.towers.items()}
