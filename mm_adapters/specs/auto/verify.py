"""Checking a candidate spec with probe adapters: output unchanged at init, every site called, every probe gets a
gradient."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..base import TowerSpec, resolve_path, tower_blocks
from .trace import first_tensor


class _Probe(nn.Module):
    """A zero-initialised bottleneck added to a site's output by a forward hook (built at the first call, at the
    width of the output it sees)."""

    def __init__(self, channels_first: bool = False) -> None:
        super().__init__()
        self.down: nn.Linear | None = None
        self.up: nn.Linear | None = None
        self.calls = 0
        self.channels_first = channels_first

    def hook(self, module, args, output):
        self.calls += 1
        hidden = output[0] if isinstance(output, tuple) else output
        if self.channels_first:
            adapted = self._adapted(hidden.movedim(1, -1)).movedim(-1, 1)
        else:
            adapted = self._adapted(hidden)
        return (adapted, *output[1:]) if isinstance(output, tuple) else adapted

    def _adapted(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.down is None:
            width = hidden.shape[-1]
            self.down, self.up = nn.Linear(width, 4), nn.Linear(4, width)
            nn.init.zeros_(self.up.weight), nn.init.zeros_(self.up.bias)
            nn.init.constant_(
                self.down.bias, 0.1
            )  # tiny random models have tiny activations: keep ReLU alive
        return hidden + self.up(torch.relu(self.down(hidden.to(self.down.weight.dtype)))).to(hidden.dtype)


def verify(model: nn.Module, towers: dict[str, TowerSpec], run: Callable[[nn.Module], object]) -> str | None:
    """None when probe adapters on every site keep the output at init, are all called and all get a gradient;
    else what failed."""
    model = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        reference = first_tensor(run(model)).float()
    probes = []
    for tower_name, tower in towers.items():
        for index, block in enumerate(tower_blocks(model, tower)):
            for kind, site in tower.sites(block).items():
                module = resolve_path(block, site.output)
                probe = _Probe(tower.channels_first_of(block, site))
                module.register_forward_hook(probe.hook)
                probes.append((f"{tower_name} layer {index} {kind} ({site.output})", probe))
    with torch.no_grad():
        difference = (first_tensor(run(model)).float() - reference).abs().max().item()
    if not difference <= 1e-5:
        return f"probe adapters change the output at init by {difference:.1e}"
    silent = [name for name, probe in probes if probe.calls == 0]
    if silent:
        return f"sites never called: {silent[:3]}"
    for _, probe in probes:
        nn.init.normal_(probe.up.weight, std=0.1)
    output = first_tensor(run(model)).float()
    (output * torch.randn(output.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    dead = [
        name for name, probe in probes if probe.down.weight.grad is None or not probe.down.weight.grad.any()
    ]
    return f"sites that get no gradient: {dead[:3]}" if dead else None
