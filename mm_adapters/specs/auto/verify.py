"""Checking a candidate spec with probe adapters: output unchanged at init, every site called, the output changed once
the probes are non-zero (in eval under no_grad, where fused fast paths run), every probe gets a gradient.

A probe replaces its site's module the way :class:`~mm_adapters.site.AdapterSite` does (a wrapper with the same
attribute pass-through and the same hold on fused parents), never through a forward hook: hooks switch some fused
paths off (torch's ``nn.TransformerEncoderLayer``), so a hook-based check would pass on a path real use never takes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ...wrapping import PassThrough, hold_parents_off_fused_paths
from ..base import TowerSpec, resolve_parent, resolve_path, tower_blocks
from .trace import output_vector


class _Probe(PassThrough):
    """Calls the wrapped site and adds a zero-initialised bottleneck to its output (built at the first call, at the
    width of the output it sees); counts its calls."""

    def __init__(self, base_layer: nn.Module, channels_first: bool = False) -> None:
        super().__init__(base_layer)
        self.down: nn.Linear | None = None
        self.up: nn.Linear | None = None
        self.calls = 0
        self.channels_first = channels_first
        hold_parents_off_fused_paths(self, True)

    def forward(self, *args, **kwargs):
        output = self.base_layer(*args, **kwargs)
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
            # tiny random models have tiny activations: keep ReLU alive
            nn.init.constant_(self.down.bias, 0.1)
        return hidden + self.up(torch.relu(self.down(hidden.to(self.down.weight.dtype)))).to(hidden.dtype)


def _install_probes(model: nn.Module, towers: dict[str, TowerSpec]) -> list[tuple[str, _Probe]]:
    probes = []
    for tower_name, tower in towers.items():
        for index, block in enumerate(tower_blocks(model, tower)):
            for kind, site in tower.sites(block).items():
                module = resolve_path(block, site.output)
                if not isinstance(module, _Probe):
                    parent, child = resolve_parent(block, site.output)
                    module = _Probe(module, tower.channels_first_of(block, site))
                    setattr(parent, child, module)
                probes.append((f"{tower_name} layer {index} {kind} ({site.output})", module))
    return probes


def _output(model: nn.Module, run: Callable[[nn.Module], object]) -> torch.Tensor:
    return output_vector(run(model))


def _with_last_blocks(run: Callable[[nn.Module], object], towers: dict[str, TowerSpec]) -> Callable:
    """``run``, returning also each tower's last block output: what the checks compare when the model's own output
    is all zeros for any input (a zero-initialised head, as torchvision's ``VisionTransformer`` has before
    training), which no adapter can change."""

    def run_with_blocks(model: nn.Module):
        seen: list = []
        hooks = [
            tower_blocks(model, tower)[-1].register_forward_hook(lambda _m, _a, out: seen.append(out))
            for tower in towers.values()
        ]
        try:
            result = run(model)
        finally:
            for hook in hooks:
                hook.remove()
        return result, seen

    return run_with_blocks


def verify(model: nn.Module, towers: dict[str, TowerSpec], run: Callable[[nn.Module], object]) -> str | None:
    """None when probe adapters on every site keep the output at init, are all called, change the output once
    non-zero (eval, no_grad) and all get a gradient; else what failed. ``model`` is not changed. An output that is
    all zeros (a zero-initialised head) is read together with each tower's last block output."""
    model = copy.deepcopy(model).requires_grad_(False).eval()
    with torch.no_grad():
        reference = _output(model, run)
    if not reference.any():
        run = _with_last_blocks(run, towers)
        with torch.no_grad():
            reference = _output(model, run)
    probes = _install_probes(model, towers)
    with torch.no_grad():
        difference = (_output(model, run) - reference).abs().max().item()
    if not difference <= 1e-5:
        return f"probe adapters change the output at init by {difference:.1e}"
    silent = [name for name, probe in probes if probe.calls == 0]
    if silent:
        return f"sites never called in eval under no_grad (a fused path skips them): {silent[:3]}"
    for _, probe in probes:
        nn.init.normal_(probe.up.weight, std=0.1)
    with torch.no_grad():
        changed = (_output(model, run) - reference).abs().max().item()
    if not changed > 0:
        return "non-zero probe adapters leave the output unchanged in eval under no_grad (they are skipped)"
    output = _output(model, run)
    (output * torch.randn(output.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    dead = [
        name for name, probe in probes if probe.down.weight.grad is None or not probe.down.weight.grad.any()
    ]
    return f"sites that get no gradient: {dead[:3]}" if dead else None
