"""One model, every placement preset: added with no ``spec=``, identity at init, gradients where they belong, and
(Houlsby) attention and FFN adapted in every layer of every tower."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import AdapterConfig
from ..injection import add_adapter
from ..specs import detect_spec, tower_blocks
from ..state import get_state, iter_sites

PRESETS: dict[str, Callable[[], AdapterConfig]] = {
    "pfeiffer": AdapterConfig.pfeiffer,
    "houlsby": AdapterConfig.houlsby,
    "parallel": AdapterConfig.parallel,
}
TOLERANCE = 1e-5


@dataclass
class Result:
    library: str
    name: str
    model_class: str = ""
    family: str = ""
    towers: dict[str, int] = field(default_factory=dict)
    """Adapted towers and their layer counts."""
    notes: tuple[str, ...] = ()
    error: str = ""
    seconds: float = 0.0
    """Wall time to build and check it."""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def partial(self) -> bool:
        return self.ok and bool(self.notes)


def check_model(model: nn.Module, run: Callable[[nn.Module], torch.Tensor], result: Result) -> Result:
    """Fill ``result`` for ``model`` (frozen base, eval mode); ``run(model)`` returns the output tensor to compare."""
    result.model_class = type(model).__name__
    try:
        spec = detect_spec(model)
        result.family, result.notes = spec.family, spec.notes
        result.towers = {name: len(tower_blocks(model, t)) for name, t in spec.towers.items()}
        with torch.no_grad():
            frozen = run(model).float()
        for preset, make_config in PRESETS.items():
            _check_preset(copy.deepcopy(model), run, frozen, preset, make_config())
    except Exception as error:  # noqa: BLE001  (the sweep reports every failure and goes on)
        result.error = (
            f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            if str(error)
            else type(error).__name__
        )
    return result


def _check_preset(model: nn.Module, run, frozen: torch.Tensor, preset: str, config: AdapterConfig) -> None:
    add_adapter(model, "probe", config)
    with torch.no_grad():
        difference = (run(model).float() - frozen).abs().max().item()
    if not difference <= TOLERANCE:
        raise AssertionError(f"{preset}: output differs from the frozen base at init by {difference:.2e}")
    if preset == "houlsby":
        _check_every_layer(model)
    for site in iter_sites(model):
        for adapter in site.adapters.values():
            with (
                torch.no_grad()
            ):  # untrained tiny models have tiny activations: keep the bottleneck's ReLU alive
                adapter.up.weight.normal_(std=0.1)
                adapter.down.bias.fill_(0.1)
    output = run(model).float()
    # a fixed random projection: a squared norm of a LayerNorm output is nearly constant and would hide gradients
    weights = torch.randn(output.shape, generator=torch.Generator().manual_seed(0)).to(output.device)
    (output * weights).sum().backward()
    for name, parameter in model.named_parameters():
        has_grad = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        if parameter.requires_grad and not has_grad:
            raise AssertionError(f"{preset}: adapter parameter {name} gets no gradient")
        if not parameter.requires_grad and parameter.grad is not None:
            raise AssertionError(f"{preset}: base parameter {name} got a gradient")


def _check_every_layer(model: nn.Module) -> None:
    spec = get_state(model).spec
    adapted = {(site.tower, site.layer_index, site.site) for site in iter_sites(model)}
    for tower_name, tower in spec.towers.items():
        for index in range(len(tower_blocks(model, tower))):
            for kind in ("attn", "ffn"):
                if (tower_name, index, kind) not in adapted:
                    raise AssertionError(f"houlsby: {tower_name} layer {index} has no {kind} adapter")
