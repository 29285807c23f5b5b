"""One model, every placement preset: added with no ``spec=``, identity at init, gradients where they belong, every
block the independent finder (:mod:`.blocks`) sees adapted or named in a note, and, with non-zero adapters, an
output different from the base in ``train()``, ``eval()``, ``torch.no_grad()`` and ``torch.inference_mode()``.

The mode checks call the model as a user does: this module adds no hook anywhere (a forward hook switches off
fused fast paths such as ``nn.TransformerEncoderLayer``'s in ``eval()``, so a check with hooks would not see an
adapter that the fast path skips)."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import AdapterConfig
from ..injection import add_adapter
from ..specs import detect_spec, tower_blocks
from ..state import get_state, iter_sites
from .blocks import find_blocks, has_attention, missed_blocks

PRESETS: dict[str, Callable[[], AdapterConfig]] = {
    "pfeiffer": AdapterConfig.pfeiffer,
    "houlsby": AdapterConfig.houlsby,
    "parallel": AdapterConfig.parallel,
}
TOLERANCE = 1e-5
MODES = ("eval", "no_grad", "inference_mode", "train")
"""The modes the base and the adapted model are compared in (train last: it may update BatchNorm statistics)."""
REFUSED = "refused"
HALF_ADAPTED = "half-adapted"


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
    group: str = ""
    """What the coverage figures count: the Hugging Face model type, the timm module, the open_clip config."""
    blocks: int = 0
    """Transformer blocks the independent finder saw (:func:`.blocks.find_blocks`)."""
    onnx: str = ""
    """``yes`` or ``no: <why>`` when the sweep ran with ``--onnx`` and the model passes (:mod:`.onnx_check`)."""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def partial(self) -> bool:
        return self.ok and bool(self.notes)

    @property
    def refused(self) -> bool:
        return self.error.startswith(f"{REFUSED}:")

    @property
    def half_adapted(self) -> bool:
        return self.error.startswith(f"{HALF_ADAPTED}:")


def _message(error: Exception) -> str:
    return (
        f"{type(error).__name__}: {str(error).splitlines()[0][:300]}" if str(error) else type(error).__name__
    )


def check_model(model: nn.Module, run: Callable[[nn.Module], torch.Tensor], result: Result) -> Result:
    """Fill ``result`` for ``model`` (frozen base, eval mode); ``run(model)`` returns the output tensor to compare.
    A model with no transformer block and no attention-like module (by the finder) that the spec refuses is
    *refused*, counted apart."""
    result.model_class = type(model).__name__
    blocks = find_blocks(model)
    result.blocks = len(blocks)
    try:
        spec = detect_spec(model)
    except Exception as error:  # noqa: BLE001  (the sweep reports every failure and goes on)
        refusable = not blocks and not has_attention(model)
        result.error = f"{REFUSED}: {_message(error)}" if refusable else _message(error)
        return result
    try:
        result.family, result.notes = spec.family, spec.notes
        result.towers = {name: len(tower_blocks(model, t)) for name, t in spec.towers.items()}
        base = outputs_in_modes(copy.deepcopy(model), run)
        for preset, make_config in PRESETS.items():
            _check_preset(copy.deepcopy(model), run, base, blocks, preset, make_config())
    except _HalfAdapted as error:
        result.error = f"{HALF_ADAPTED}: {error}"
    except Exception as error:  # noqa: BLE001
        result.error = _message(error)
    return result


class _HalfAdapted(AssertionError):
    pass


def outputs_in_modes(model: nn.Module, run) -> dict[str, torch.Tensor | Exception]:
    """``run(model)`` in each of :data:`MODES`, seeded alike; an exception where the model fails in a mode."""
    contexts = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}
    outputs: dict[str, torch.Tensor | Exception] = {}
    for mode in MODES:
        model.train(mode == "train")
        torch.manual_seed(0)
        try:
            with contexts.get(mode, contextlib.nullcontext)():
                outputs[mode] = run(model).detach().float().clone()
        except Exception as error:  # noqa: BLE001
            outputs[mode] = error
    model.eval()
    return outputs


def _check_preset(
    model: nn.Module, run, base: dict, blocks: list[str], preset: str, config: AdapterConfig
) -> None:
    add_adapter(model, "probe", config)
    frozen = base["no_grad"]
    if isinstance(frozen, Exception):
        raise frozen
    with torch.no_grad():
        difference = (run(model).float() - frozen).abs().max().item()
    if not difference <= TOLERANCE:
        raise AssertionError(f"{preset}: output differs from the frozen base at init by {difference:.2e}")
    notes = get_state(model).spec.notes
    missed = missed_blocks(model, blocks, config.sites, notes)
    if missed:
        raise _HalfAdapted(
            f"{preset}: {len(missed)} of {len(blocks)} blocks lack a {'/'.join(config.sites)} adapter and no note "
            f"names them: {', '.join(missed[:4])}"
        )
    if preset == "houlsby":
        _check_every_layer(model)
    for site in iter_sites(model):
        for adapter in site.adapters.values():
            with (
                torch.no_grad()
            ):  # untrained tiny models have tiny activations: keep the bottleneck's ReLU alive
                adapter.up.weight.normal_(std=0.1)
                adapter.down.bias.fill_(0.1)
    _check_gradients(model, run, preset)
    check_adapters_run(model, run, base, preset)


def _check_gradients(model: nn.Module, run, preset: str) -> None:
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


def check_adapters_run(model: nn.Module, run, base: dict, preset: str) -> None:
    """With non-zero adapters the output must differ from the base's in every mode the base runs in."""
    adapted = outputs_in_modes(model, run)
    for mode in MODES:
        if isinstance(base[mode], Exception):
            continue  # the base model itself does not run this way
        if isinstance(adapted[mode], Exception):
            raise AssertionError(f"{preset}: fails in {mode} where the base runs: {_message(adapted[mode])}")
        scale = max(1.0, base[mode].abs().max().item())
        if not (adapted[mode] - base[mode]).abs().max().item() > 1e-6 * scale:
            raise AssertionError(f"{preset}: adapters skipped in {mode}: output equals the base's")


def _check_every_layer(model: nn.Module) -> None:
    spec = get_state(model).spec
    adapted = {(site.tower, site.layer_index, site.site) for site in iter_sites(model)}
    for tower_name, tower in spec.towers.items():
        for index in range(len(tower_blocks(model, tower))):
            for kind in ("attn", "ffn"):
                if (tower_name, index, kind) not in adapted:
                    raise AssertionError(f"houlsby: {tower_name} layer {index} has no {kind} adapter")
