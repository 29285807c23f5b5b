"""Where a ``Parallel`` setup replicates the batch inside one tower, done with forward hooks (no copied model code).

At the *branch block* (the block holding the lowest site where the tasks differ) the block's hidden-state input is
repeated N times, task-major. The sublayers of that block that run before the branch site see identical replicas,
so they run once on the original B rows and their output is repeated (they are "shared"); the branch site's base
layer is shared the same way, and from there each replica meets its own task's adapters. Block arguments that
carry the batch (the spec's ``batch_args``: attention masks, position biases) are repeated for every block from the
branch block on, once per forward; the shared sublayers get the originals back.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from ..config import SITES
from ..site import AdapterSite, InputTap, first_input
from ..specs import TowerSpec, resolve_path


def site_order(kind: str) -> int:
    """Execution order of a site kind inside a block (attention before the feed-forward)."""
    return SITES.index(kind) if kind in SITES else len(SITES)


def repeat_rows(tensor: torch.Tensor, n: int) -> torch.Tensor:
    return tensor.repeat(n, *([1] * (tensor.dim() - 1)))


class TowerBranch:
    """The hooks that replicate one tower's batch ``n`` times from block ``layer`` (at site kind ``kind``) on."""

    def __init__(
        self, tower: str, spec: TowerSpec, layers: nn.ModuleList, layer: int, kind: str, n: int
    ) -> None:
        self.tower = tower
        self.spec = spec
        self.layers = layers
        self.layer = layer
        self.kind = kind
        self.n = n
        # per forward: id(original) -> (original, replica) and id(replica) -> (replica, original) of the
        # batch-carrying block arguments, and the outputs of shared input modules (kept at B rows)
        self._copies: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._originals: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._handed_on: dict[int, torch.Tensor] = {}

    def install(self) -> list:
        handles = []
        for index in range(self.layer, len(self.layers)):
            block = self.layers[index]
            positions = _positions(block, self.spec.batch_args)
            handles.append(
                block.register_forward_pre_hook(
                    self._block_hook(index == self.layer, positions), with_kwargs=True
                )
            )
        handles.append(self.layers[len(self.layers) - 1].register_forward_hook(self._forget))
        for module, repeat_output in shared_modules(self.layers[self.layer], self.spec, self.kind):
            handles.append(module.register_forward_pre_hook(self._share_input, with_kwargs=True))
            handles.append(
                module.register_forward_hook(self._repeat_output if repeat_output else self._hand_on)
            )
        return handles

    # -- the block inputs -------------------------------------------------------------------------------------------
    def _block_hook(self, first: bool, positions: dict[str, int]):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            args = list(args)
            if first:
                self._reset()
                if args:
                    args[0] = repeat_rows(args[0], self.n)
                else:
                    key = _hidden_key(kwargs)
                    kwargs[key] = repeat_rows(kwargs[key], self.n)
            for name in self.spec.batch_args:
                if name in kwargs:
                    kwargs[name] = self._replica(kwargs[name])
                elif name in positions and positions[name] < len(args):
                    args[positions[name]] = self._replica(args[positions[name]])
            return tuple(args), kwargs

        return hook

    def _replica(self, tensor: Any) -> Any:
        """The N-fold copy of a batch-carrying argument (made once per forward); size-1 batches broadcast as they are."""
        if not torch.is_tensor(tensor) or tensor.dim() == 0 or tensor.shape[0] == 1:
            return tensor
        if id(tensor) in self._originals:  # already a replica (a block passed it on)
            return tensor
        entry = self._copies.get(id(tensor))
        if entry is None:
            entry = (tensor, repeat_rows(tensor, self.n))
            self._copies[id(tensor)] = entry
            self._originals[id(entry[1])] = (entry[1], tensor)
        return entry[1]

    def _forget(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._reset()

    def _reset(self) -> None:
        self._copies.clear()
        self._originals.clear()
        self._handed_on.clear()

    # -- the shared sublayers of the branch block --------------------------------------------------------------------
    def _share_input(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = args[0] if args else first_input(args, kwargs)
        if id(hidden) in self._handed_on:  # a shared input module before it already ran on the original rows
            take = hidden
        elif any(out.shape[0] == hidden.shape[0] for out in self._handed_on.values()):
            take = hidden  # a handed-on output after an elementwise op (fc1 -> act -> fc2): the original rows
        elif hidden.shape[0] % self.n == 0:
            # the replicas are task-major, also after a block reshapes its rows per sample (Swin's windows)
            take = hidden[: hidden.shape[0] // self.n]
        else:
            raise RuntimeError(
                f"Parallel: {type(module).__name__} in {self.tower} layer {self.layer} got {hidden.shape[0]} rows, "
                f"not a multiple of the {self.n} tasks; the batch changed inside the branch block."
            )

        def swap(value: Any) -> Any:
            if value is hidden:
                return take
            entry = self._originals.get(id(value)) if torch.is_tensor(value) else None
            return entry[1] if entry is not None else value

        return tuple(swap(a) for a in args), {k: swap(v) for k, v in kwargs.items()}

    def _hand_on(self, module: nn.Module, args: tuple, output: Any) -> None:
        """A shared input module's output goes on with the original rows, to its sublayer's output module."""
        first = output[0] if type(output) is tuple else output
        if torch.is_tensor(first):
            self._handed_on[id(first)] = first

    def _repeat_output(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if torch.is_tensor(output):
            return repeat_rows(output, self.n)
        if type(output) is tuple and output and torch.is_tensor(output[0]):
            return (repeat_rows(output[0], self.n), *output[1:])
        raise TypeError(
            f"Parallel cannot share {type(module).__name__} (in {self.tower} layer {self.layer}): it returns "
            f"{type(output).__name__}, not a tensor or a tuple starting with one."
        )


def shared_modules(block: nn.Module, spec: TowerSpec, branch_kind: str) -> list[tuple[nn.Module, bool]]:
    """The modules of the branch block that run once on the original rows, each with whether its output is
    repeated N times (a sublayer's input module hands its B rows straight to the sublayer's output module)."""
    shared: list[tuple[nn.Module, bool]] = []
    sites = spec.sites(block)
    for kind in sorted(sites, key=site_order):
        if site_order(kind) > site_order(branch_kind):
            break
        site_spec = sites[kind]
        output = resolve_path(block, site_spec.output)
        source = resolve_path(block, site_spec.input) if site_spec.input else None
        if source is output or (isinstance(output, AdapterSite) and source is output.base_layer):
            source = None
        contains = source is not None and any(m is output for m in source.modules())
        if kind != branch_kind and contains:
            shared.append((source, True))  # the whole sublayer, its (identical) site inside
            continue
        if source is not None and not contains:
            shared.append((_inner(source), False))
        shared.append((_inner(output), True))
    return shared


def _inner(module: nn.Module) -> nn.Module:
    """Share the wrapped module, so an adapter site still sees (and an input tap still keeps) all N*B rows."""
    return module.base_layer if isinstance(module, (AdapterSite, InputTap)) else module


def _positions(block: nn.Module, names: tuple[str, ...]) -> dict[str, int]:
    try:
        parameters = list(inspect.signature(block.forward).parameters)
    except (TypeError, ValueError):
        return {}
    return {name: parameters.index(name) for name in names if name in parameters}


def _hidden_key(kwargs: dict) -> str:
    for key in ("hidden_states", "x", "query", "q_x"):
        if key in kwargs:
            return key
    return next(iter(kwargs))
