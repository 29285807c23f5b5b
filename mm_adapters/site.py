"""Wrappers that put adapters on a backbone's sublayers without copying its code.

An :class:`AdapterSite` replaces one sublayer module (``setattr(parent, name, site)``), calls it unchanged and adds
the active adapters to its output. A parallel adapter needs the sublayer's *input*; where that input enters a
different module than the one whose output is adapted (Hugging Face BERT and ViT split the FFN in two), an
:class:`InputTap` wraps that module and hands its input over.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from torch import nn

from .layers import BottleneckAdapter
from .placements import SitePlacement, adapter_input, after_norm
from .wrapping import PassThrough, hold_parents_off_fused_paths


def first_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden-state argument of a sublayer call, positional or keyword."""
    if args:
        return args[0]
    for key in ("hidden_states", "x", "query", "q_x"):
        if key in kwargs:
            return kwargs[key]
    return next(iter(kwargs.values()))


LayerWrapper = PassThrough
"""Holds ``base_layer`` and lets attribute reads fall through to it (:class:`mm_adapters.wrapping.PassThrough`):
the base of every module that stands in for a backbone's sublayer."""


class InputTap(LayerWrapper):
    """Passes a module's call through and, while a site reading it needs it, keeps its hidden-state input until
    every such site has read it once (two sites share a tap where both sublayers read one LayerNorm: Phi and GPT-J's
    parallel-residual blocks)."""

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__(base_layer)
        self.enabled = False
        self.captured: torch.Tensor | None = None
        self._readers: list = []  # the sites reading this tap (a plain list: not submodules)
        self._wanted = 0
        self._left = 0

    def attach(self, site: nn.Module) -> None:
        if not any(reader is site for reader in self._readers):
            self._readers.append(site)
        self.refresh()

    def detach(self, site: nn.Module) -> None:
        self._readers = [reader for reader in self._readers if reader is not site]
        self.refresh()

    @property
    def readers(self) -> int:
        return len(self._readers)

    def refresh(self) -> None:
        """Capture while any reader's active adapters read the stream; keep each capture for that many reads."""
        self._wanted = sum(1 for reader in self._readers if reader._needs_input)
        self.enabled = self._wanted > 0

    def _capture(self, value: torch.Tensor) -> None:
        self.captured, self._left = value, self._wanted

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.enabled:
            self._capture(first_input(args, kwargs))
        return self.base_layer(*args, **kwargs)

    def take(self) -> torch.Tensor:
        captured = self.captured
        self._left -= 1
        if self._left <= 0:
            self.captured = None
        if captured is None:
            raise RuntimeError(
                "A parallel adapter found no captured sublayer input; was the sublayer skipped?"
            )
        return captured


class OutputTap(InputTap):
    """An :class:`InputTap` that keeps the module's output instead (a downsampling shortcut whose output is the
    residual a sublayer is added to)."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.base_layer(*args, **kwargs)
        if self.enabled:
            self._capture(out[0] if type(out) is tuple else out)
        return out


class AdapterSite(LayerWrapper):
    """One adapted sublayer (``site`` = "attn" or "ffn") of layer ``layer_index`` in ``tower``.

    ``channels_first``: the sublayer's output carries channels in dim 1 (NCHW); the adapters, fusions and
    compositions see it (and the stream) with channels moved to the last dim."""

    def __init__(
        self,
        base_layer: nn.Module,
        tower: str,
        layer_index: int,
        site: str,
        hidden_size: int,
        channels_first: bool = False,
    ) -> None:
        super().__init__(base_layer)
        self.tower = tower
        self.layer_index = layer_index
        self.site = site
        self.hidden_size = hidden_size
        self.channels_first = channels_first
        self.adapters = nn.ModuleDict()
        # AdapterFusion layers over some of ``adapters`` (the Fuse composition method adds them)
        self.fusions = nn.ModuleDict()
        self.active: tuple[str, ...] = ()
        # the active composition's plan for this site (``apply(site, hidden, sublayer_input)``); None stacks
        # ``active`` in order
        self.composition: Any = None
        self._dropped = False  # AdapterDrop: run the plain sublayer
        self._tap: tuple[InputTap, ...] = ()  # a tuple keeps the tap out of this module's children
        # where the stream is tapped and which LayerNorm residual-reading placements use (mm_adapters.placements)
        self.placement: SitePlacement | None = None
        self._refresh()

    # -- configuration (never changed inside forward) ---------------------------------------------------------
    def add(self, name: str, adapter: BottleneckAdapter) -> None:
        self.adapters[name] = adapter
        self._refresh()

    def remove(self, name: str) -> None:
        del self.adapters[name]
        self.set_active(tuple(n for n in self.active if n != name), self.composition)

    def set_trainable(self, names: Collection[str]) -> None:
        """The adapters ``names`` here trainable, the others frozen; only adapters whose state changes are touched
        (with 1,000 adapters loaded, switching task would otherwise walk every adapter's parameters)."""
        for name, adapter in self.adapters.items():
            wanted = name in names
            if adapter.down.weight.requires_grad != wanted:  # requires_grad_ sets every parameter alike
                adapter.requires_grad_(wanted)

    def set_active(self, names: tuple[str, ...], composition: Any = None) -> None:
        """Use ``names`` here; ``composition`` (an object with ``apply(site, hidden, sublayer_input)``) replaces
        stacking them in order."""
        self.active = tuple(n for n in names if n in self.adapters)
        self.composition = composition if self.active else None
        self._refresh()

    @property
    def dropped(self) -> bool:
        return self._dropped

    @dropped.setter
    def dropped(self, value: bool) -> None:
        self._dropped = bool(value)
        self._refresh()

    @property
    def needs_input(self) -> bool:
        return any(
            self.adapters[n].reads != "output" and not after_norm(self.placement, self.adapters[n].reads)
            for n in self.active
        )

    def adapter_input(self, name: str, hidden: torch.Tensor, stream: torch.Tensor | None) -> torch.Tensor:
        """What adapter ``name`` reads here, given the sublayer output ``hidden`` and the tapped stream."""
        return adapter_input(self.placement, self.adapters[name].reads, hidden, stream)

    def attach_tap(self, tap: InputTap | None) -> None:
        if self._tap:
            self._tap[0].detach(self)
        self._tap = (tap,) if tap is not None else ()
        self._refresh()

    @property
    def tap(self) -> InputTap | None:
        return self._tap[0] if self._tap else None

    def _refresh(self) -> None:
        """Work out once, outside forward, what forward does: the base call, and the adapters to stack (as
        (adapter, what it reads) pairs) or the composition plan; nothing when dropped or inactive."""
        runs = bool(self.active) and not self._dropped
        needs_input = runs and self.needs_input
        # plain attributes (not submodules), so forward never goes through Module.__getattr__
        self._base = (self._modules["base_layer"],)
        stacked = self.active if runs and self.composition is None else ()
        # block_output adapters on a post-LN block run after its LayerNorm (the BlockOutputSite wrapping it)
        later = tuple(n for n in stacked if after_norm(self.placement, self.adapters[n].reads))
        self._stack = tuple((self.adapters[n], self.adapters[n].reads) for n in stacked if n not in later)
        self._after_norm = tuple(self.adapters[n] for n in later)
        self._plan = self.composition if runs else None
        self._needs_input = needs_input
        if self._tap:
            self._tap[0].attach(self)
        hold_parents_off_fused_paths(self, runs)

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self._base[0](*args, **kwargs)
        if not self._stack and self._plan is None:
            return out
        sublayer_input = None
        if self._needs_input:
            sublayer_input = self._tap[0].take() if self._tap else first_input(args, kwargs)
        if type(out) is tuple:
            return (self.adapt(out[0], sublayer_input), *out[1:])
        return self.adapt(out, sublayer_input)

    def adapt(self, hidden: torch.Tensor, sublayer_input: torch.Tensor | None) -> torch.Tensor:
        """Apply the active adapters, stacked in order (or as the active composition), to the output ``hidden``."""
        if self.channels_first:
            stream = None if sublayer_input is None else sublayer_input.movedim(1, -1)
            return self._adapt(hidden.movedim(1, -1), stream).movedim(-1, 1)
        return self._adapt(hidden, sublayer_input)

    def _adapt(self, hidden: torch.Tensor, sublayer_input: torch.Tensor | None) -> torch.Tensor:
        if self._plan is not None:
            return self._plan.apply(self, hidden, sublayer_input)
        for adapter, reads in self._stack:
            x = hidden if reads == "output" else adapter_input(self.placement, reads, hidden, sublayer_input)
            hidden = adapter(x, hidden)
        return hidden

    def adapt_block_output(self, output: torch.Tensor) -> torch.Tensor:
        """Add the active adapters that read the block's output ``y`` (post-LN ``block_output``): ``y + A(y)``."""
        if self.channels_first:
            output = output.movedim(1, -1)
        for adapter in self._after_norm:
            output = adapter(output, output)
        return output.movedim(-1, 1) if self.channels_first else output

    def extra_repr(self) -> str:
        composition = f", composition={self.composition!r}" if self.composition is not None else ""
        layout = ", channels_first=True" if self.channels_first else ""
        return (
            f"tower={self.tower!r}, layer={self.layer_index}, site={self.site!r}{layout}, "
            f"active={list(self.active)}{composition}"
        )


class BlockOutputSite(LayerWrapper):
    """Wraps a post-LN block's LayerNorm (the one after ``site``'s residual add): adds ``site``'s active adapters that
    read the block's output (``reads="block_output"``, Adapter+) to what it returns."""

    def __init__(self, base_layer: nn.Module, site: AdapterSite) -> None:
        super().__init__(base_layer)
        # a tuple keeps the site out of this module's children (it is the block's already)
        self._site = (site,)

    @property
    def site(self) -> AdapterSite:
        return self._site[0]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self._modules["base_layer"](*args, **kwargs)
        site = self._site[0]
        return site.adapt_block_output(out) if site._after_norm else out
