"""Extension points the core calls without importing their implementations.

As peft's ``register_peft_method``, a composition method (``Stack``, ``Fuse``, ``BatchSplit``, ``Parallel``: one
file each in :mod:`mm_adapters.composition`) registers itself once, keyed by the block class users pass to
:func:`mm_adapters.set_active_adapters`; the core asks this registry and never names a method. Saved adapters whose
towers share parameters (cross-modal CLIP adapters) are rebuilt by a builder registered under their ``share`` mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn


class CompositionMethod:
    """What a composition method provides. ``activate`` is all the core calls; the rest lets blocks nest
    (a ``Parallel`` of ``Fuse`` and ``Stack`` children asks each child's method)."""

    follows_drop: bool = False
    """Whether the method's per-site plans depend on AdapterDrop, so a drop change re-activates it."""

    def activate(self, model: nn.Module, block: Any) -> None:
        """Check ``block`` against ``model``, give every site its plan and set what trains."""
        raise NotImplementedError

    def resolve(self, state: Any, block: Any) -> Any:
        """The block with everything it leaves open filled in from the model (e.g. which fusion a ``Fuse`` means)."""
        return block

    def trained(self, block: Any) -> tuple[set[str], set[str]]:
        """(adapter names, fusion names) that train while ``block`` is active."""
        raise NotImplementedError

    def site_plan(self, block: Any, site: Any) -> Any:
        """What ``site`` does under ``block``: an object with ``apply(site, hidden, sublayer_input)``, or None."""
        raise NotImplementedError


_METHODS: dict[type, CompositionMethod] = {}
_SHARED_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_composition(block_type: type, method: CompositionMethod) -> None:
    """Make ``set_active_adapters(model, block_type(...))`` run ``method``; once per block class."""
    if block_type in _METHODS and type(_METHODS[block_type]) is not type(method):
        raise ValueError(f"A composition method for {block_type.__name__} is already registered.")
    _METHODS[block_type] = method


def composition_method(block: object) -> CompositionMethod:
    """The registered method for ``block`` (by its class or a base class)."""
    for cls in type(block).__mro__:
        if cls in _METHODS:
            return _METHODS[cls]
    known = ", ".join(sorted(t.__name__ for t in _METHODS)) or "none registered"
    raise TypeError(
        f"Cannot activate {block!r}: pass an adapter name, a list of names, None, or a composition block "
        f"({known})."
    )


def is_composition(block: object) -> bool:
    return any(cls in _METHODS for cls in type(block).__mro__)


def register_shared_adapter(share: str, builder: Callable[..., Any]) -> None:
    """``builder(model, name, config, share=share, set_active=False)`` re-creates a saved adapter whose towers
    share parameters (its ``adapter_config.json`` says ``"share": share``)."""
    _SHARED_BUILDERS[share] = builder


def shared_adapter_builder(share: str) -> Callable[..., Any]:
    if share not in _SHARED_BUILDERS:
        raise ValueError(
            f"Unknown adapter share mode {share!r}; known: {sorted(_SHARED_BUILDERS)} (import mm_adapters first)."
        )
    return _SHARED_BUILDERS[share]
