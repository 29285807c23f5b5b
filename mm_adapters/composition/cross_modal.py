"""Cross-modal adapters for two-tower models (CLIP): the vision and text adapters of the same depth share a middle
projection in a common bottleneck space (MMA, Yang et al. 2024; UniAdapter, Lu et al. 2023 shares across modalities
the same way). The towers still run independently: only weights are shared, never activations.

Each tower's adapter is ``up_t(act(middle(act(down_t(x)))))``: ``down_t`` / ``up_t`` fit that tower's width,
``middle`` (r x r) is one module held by both towers' adapters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import nn

from ..config import AdapterConfig
from ..injection import add_adapter, delete_adapter, set_active_adapters
from ..layers import BottleneckAdapter
from ..plugins import register_shared_adapter
from ..site import AdapterSite
from ..specs import BackboneSpec, detect_spec
from ..state import backbone_signature, get_state, has_adapters, iter_sites
from .feature_adapter import FeatureAdapter

SHARE_MODES = ("none", "middle")


class SharedBottleneckAdapter(BottleneckAdapter):
    """A bottleneck adapter with a ``middle`` projection that another tower's adapter holds too."""

    def __init__(self, hidden_size: int, config: AdapterConfig, middle: nn.Linear) -> None:
        super().__init__(hidden_size, config)
        self.middle = middle

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.act(self.middle(self.act(self.down(x)))))


def add_cross_modal_adapter(
    model: nn.Module,
    name: str,
    config: AdapterConfig | None = None,
    *,
    share: str = "middle",
    set_active: bool = True,
) -> nn.Module:
    """Add adapter ``name`` to both towers of a two-tower model, sharing parameters across them per ``share``:

    - ``"none"``: separate adapters per tower (exactly :func:`mm_adapters.add_adapter`);
    - ``"middle"``: tower-specific down/up projections around a shared r x r middle projection per layer and
      site, ``r`` being ``config.bottleneck_dim`` or the narrower tower's bottleneck size. Layers pair from the
      top, so both towers need the same number of adapted layers (use ``layers="last:K"`` for towers of
      different depth).

    Saved and loaded with ``save_adapter`` / ``load_adapter`` like any adapter.
    """
    if share not in SHARE_MODES:
        raise ValueError(f"share must be one of {SHARE_MODES}, got {share!r}.")
    config = config or AdapterConfig.pfeiffer()
    if share == "none":
        return add_adapter(model, name, config, set_active=set_active)
    _check_two_towers(model, config)
    add_adapter(model, name, config, set_active=False)
    try:
        shared_config = dataclasses.replace(config, bottleneck_dim=shared_bottleneck_size(model, config))
        for pair in _paired_sites(model, name):
            middle = _identity_linear(shared_config.bottleneck_dim)
            for site in pair:
                device = next(site.adapters[name].parameters()).device
                site.adapters[name] = SharedBottleneckAdapter(site.hidden_size, shared_config, middle).to(
                    device
                )
    except Exception:
        delete_adapter(model, name)
        raise
    state = get_state(model)
    state.shared[name] = share
    set_active_adapters(model, name if set_active else state.setup)
    return model


def shared_bottleneck_size(model: nn.Module, config: AdapterConfig) -> int:
    """The common bottleneck width r of a shared cross-modal adapter on ``model``."""
    towers = _signature(model)["towers"]
    selected = config.towers or tuple(towers)
    return min(config.bottleneck_size(towers[t]["hidden_size"]) for t in selected)


def cross_modal_parameter_counts(
    model: nn.Module,
    config: AdapterConfig | None = None,
    *,
    feature_dim: int | None = None,
    feature_reduction: int = 4,
) -> dict[str, int]:
    """Trainable parameters of each cross-modal variant on ``model`` (nothing is added to it):
    ``separate`` (one adapter per tower), ``shared_middle`` and ``feature`` (an image and a text FeatureAdapter
    on the ``feature_dim``-wide embeddings, read from the model when not given)."""
    config = config or AdapterConfig.pfeiffer()
    pair_count = _check_two_towers(model, config) * len(config.sites)
    towers = _signature(model)["towers"]
    selected = config.towers or tuple(towers)
    separate = shared = 0
    r = shared_bottleneck_size(model, config)
    shared_config = dataclasses.replace(config, bottleneck_dim=r)
    for tower in selected:
        hidden, layers = towers[tower]["hidden_size"], towers[tower]["num_layers"]
        sites = len(config.layer_indices(layers)) * len(config.sites)
        separate += sites * _numel(BottleneckAdapter(hidden, config))
        shared += sites * _numel(BottleneckAdapter(hidden, shared_config))
    shared += pair_count * _numel(_identity_linear(r))
    dim = feature_dim if feature_dim is not None else embedding_dim(model)
    feature = 2 * _numel(FeatureAdapter(dim, reduction_factor=feature_reduction))
    return {"separate": separate, "shared_middle": shared, "feature": feature}


def embedding_dim(model: nn.Module) -> int:
    """Width of a CLIP model's final (projected) embeddings."""
    projection_dim = getattr(getattr(model, "config", None), "projection_dim", None)  # Hugging Face CLIPModel
    if projection_dim is not None:
        return int(projection_dim)
    output_dim = getattr(getattr(model, "visual", None), "output_dim", None)  # open_clip
    if output_dim is not None:
        return int(output_dim)
    raise ValueError(f"Cannot tell the embedding width of {type(model).__name__}; pass feature_dim=...")


# -- internals ------------------------------------------------------------------------------------------------------
def _signature(model: nn.Module) -> dict:
    spec: BackboneSpec = get_state(model).spec if has_adapters(model) else detect_spec(model)
    return backbone_signature(model, spec)


def _check_two_towers(model: nn.Module, config: AdapterConfig) -> int:
    """Both towers must get adapters at equally many layers; returns that count."""
    towers = _signature(model)["towers"]
    selected = config.towers or tuple(towers)
    if len(selected) != 2:
        raise ValueError(
            f"Sharing adapter parameters across modalities needs two towers (CLIP); this model's adapters would go "
            f"into {list(selected)}. Use add_adapter (or share='none') for a single tower."
        )
    counts = {t: len(config.layer_indices(towers[t]["num_layers"])) for t in selected}
    if len(set(counts.values())) != 1:
        raise ValueError(
            f"The towers would get adapters at different numbers of layers {counts}; pick layers='last:K' (or "
            "explicit indices) so the vision and text layers pair up."
        )
    return next(iter(counts.values()))


def _paired_sites(model: nn.Module, name: str) -> Iterator[tuple[AdapterSite, AdapterSite]]:
    """(one tower's site, the other tower's site) pairs of the same site kind and the same depth from the top."""
    by_tower: dict[str, dict[str, list[AdapterSite]]] = {}
    for site in iter_sites(model):
        if name in site.adapters:
            by_tower.setdefault(site.tower, {}).setdefault(site.site, []).append(site)
    first, second = by_tower.values()
    for kind in first:
        ordered = [
            sorted(sites[kind], key=lambda s: s.layer_index, reverse=True) for sites in (first, second)
        ]
        yield from zip(*ordered, strict=True)


def _identity_linear(size: int) -> nn.Linear:
    linear = nn.Linear(size, size)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(size))
        linear.bias.zero_()
    return linear


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


register_shared_adapter("middle", add_cross_modal_adapter)
