"""Adding, activating and removing named adapters on a backbone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from .config import AdapterConfig
from .layers import BottleneckAdapter
from .placements import after_norm, plan_site
from .plugins import composition_method
from .site import AdapterSite, BlockOutputSite, InputTap, OutputTap
from .specs import BackboneSpec, resolve_parent, resolve_path, site_hidden_size, tower_blocks
from .state import backbone_signature, check_name, get_state, has_adapters, iter_sites, tower_layers


def add_adapter(
    model: nn.Module,
    name: str,
    config: AdapterConfig | None = None,
    *,
    spec: BackboneSpec | None = None,
    set_active: bool = True,
    example_inputs: Any = None,
) -> nn.Module:
    """Add a bottleneck adapter called ``name`` to ``model`` in place and freeze the base model.

    ``config`` defaults to :meth:`AdapterConfig.pfeiffer`. The spec is detected from the model class unless
    given. With ``set_active`` the new adapter becomes the only active (and trainable) one.

    ``example_inputs`` (a tensor, a tuple of positional arguments, a dict of keyword arguments or a callable
    ``run(model)``) is what the automatic spec traces for a model no family covers, where the inputs cannot be built
    from the model's forward signature and config; it is only used the first time a spec is needed.
    """
    config = config or AdapterConfig.pfeiffer()
    if not isinstance(config, AdapterConfig):
        raise TypeError(f"config must be an AdapterConfig, got {type(config).__name__}.")
    check_name(name)
    state = get_state(model, spec, create=True, example_inputs=example_inputs)
    if name in state.configs:
        raise ValueError(
            f"An adapter named {name!r} already exists; delete_adapter it first or pick another name."
        )
    towers = _selected_towers(state.spec, config)
    _check_sites(state.spec, towers, config)
    _check_sites_are_called(model, state.spec, towers, config)
    _check_placements(model, state.spec, towers, config)
    if not has_sites(model):
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    for tower_name, tower, index, block, site_name, site_spec in _selected_sites(
        model, state.spec, towers, config
    ):
        # stages of Swin-like models differ in width, and so may a block's sites (MViT)
        hidden_size = site_hidden_size(block, tower, site_name)
        site = _site_for(block, tower, site_spec, tower_name, index, site_name, hidden_size)
        if config.reads != "output":
            _place(block, tower, site_spec, site, config.reads, state.spec.family)
        adapter = BottleneckAdapter(hidden_size, config)
        # new modules start in training mode; follow the model's, so drop path and dropout act only in training
        adapter.train(site.base_layer.training)
        adapter.to(device=_device_of(site.base_layer))
        site.add(name, adapter)
    state.configs[name] = config
    if set_active:
        set_active_adapters(model, name)
    else:
        set_active_adapters(model, state.setup)
    return model


def set_active_adapters(model: nn.Module, names: str | Sequence[str] | Any | None) -> None:
    """Use ``names`` in the forward pass: one name, a list to stack in order, or None for the plain base model.

    Active adapters become trainable; all other adapters (and fusion layers) are frozen. A composition block
    (``mm_adapters.Fuse``, ``BatchSplit``, ``Parallel``, ``Stack``) is run by the composition method registered
    for it (:mod:`mm_adapters.plugins`).
    """
    state = get_state(model)
    if names is not None and not isinstance(names, (str, list, tuple)):
        composition_method(names).activate(model, names)
        return
    if names is None:
        active: tuple[str, ...] = ()
    elif isinstance(names, str):
        active = (names,)
    else:
        active = tuple(names)
    missing = [n for n in active if n not in state.configs]
    if missing:
        raise ValueError(f"No adapter named {missing} on this model; it has {sorted(state.configs)}.")
    if len(set(active)) != len(active):
        raise ValueError(f"An adapter is listed twice in {list(active)}.")
    state.remove_hooks()
    state.active = active
    state.composition = None
    _apply_active(model, active)


def delete_adapter(model: nn.Module, name: str) -> None:
    """Remove an adapter; sites left with no adapters are unwrapped, restoring the original modules."""
    state = get_state(model)
    if name not in state.configs:
        raise ValueError(f"No adapter named {name!r} on this model; it has {sorted(state.configs)}.")
    users = [fusion for fusion, fused in state.fusions.items() if name in fused]
    if users:
        raise ValueError(f"Adapter {name!r} is fused by {users}; delete_fusion those first.")
    if state.composition is not None and name in state.active:
        raise ValueError(
            f"Adapter {name!r} is part of the active {state.composition!r}; activate another setup first."
        )
    for site in list(iter_sites(model)):
        if name in site.adapters:
            site.remove(name)
    del state.configs[name]
    state.shared.pop(name, None)
    state.active = tuple(n for n in state.active if n != name)
    _unwrap_empty_sites(model)


def list_adapters(model: nn.Module) -> dict[str, AdapterConfig]:
    """Names and configs of the adapters on ``model``."""
    return dict(get_state(model).configs) if has_adapters(model) else {}


def active_adapters(model: nn.Module) -> tuple[str, ...]:
    return get_state(model).active if has_adapters(model) else ()


def adapted_layers(model: nn.Module, name: str | None = None) -> dict[str, list[int]]:
    """Per tower, the layer indices holding an adapter (``name``, or any active one). Layers below the lowest index
    run the frozen base model only, so their output can be computed without autograd or cached."""
    names = {name} if name else set(active_adapters(model))
    layers: dict[str, set[int]] = {}
    for site in iter_sites(model):
        if names & set(site.adapters):
            layers.setdefault(site.tower, set()).add(site.layer_index)
    return {tower: sorted(indices) for tower, indices in layers.items()}


def has_sites(model: nn.Module) -> bool:
    return any(True for _ in iter_sites(model))


def signature(model: nn.Module) -> dict:
    state = get_state(model, create=True)
    return backbone_signature(model, state.spec)


# -- internals ------------------------------------------------------------------------------------------------------
def _selected_towers(spec: BackboneSpec, config: AdapterConfig) -> list[str]:
    if config.towers is None:
        return list(spec.towers)
    unknown = [t for t in config.towers if t not in spec.towers]
    if unknown:
        raise ValueError(
            f"Unknown towers {unknown} for backbone {spec.family!r}; it has {list(spec.towers)}."
        )
    return list(config.towers)


def _check_sites(spec: BackboneSpec, towers: list[str], config: AdapterConfig) -> None:
    """Every site in ``config.sites`` must exist in at least one selected tower (``cross_attn`` only in some)."""
    available = {site for tower in towers for site in spec.towers[tower].sites()}
    missing = [site for site in config.sites if site not in available]
    if missing:
        raise ValueError(
            f"AdapterConfig.sites asks for {missing}, which no selected tower of backbone {spec.family!r} has "
            f"(towers {towers} have sites {sorted(available)})."
        )


def _check_sites_are_called(
    model: nn.Module, spec: BackboneSpec, towers: list[str], config: AdapterConfig
) -> None:
    """Refuse a site its parent never calls as a module: ``nn.MultiheadAttention`` reads ``out_proj``'s weights in
    both its paths, so an adapter there would silently never run."""
    for tower_name, _, index, block, site_name, site_spec in _selected_sites(model, spec, towers, config):
        parent, child = resolve_parent(block, site_spec.output)
        if isinstance(parent, nn.MultiheadAttention):
            raise ValueError(
                f"Tower {tower_name!r} layer {index}: the {site_name} site {site_spec.output!r} is a part of "
                f"nn.MultiheadAttention ({child!r}), which reads its weights without calling it, so an adapter "
                "there would never run; point the site at the MultiheadAttention module itself."
            )


def _site_for(
    layer: nn.Module, tower_spec, site_spec, tower: str, index: int, site_name: str, hidden_size: int
) -> AdapterSite:
    existing = resolve_path(layer, site_spec.output)
    if isinstance(existing, AdapterSite):
        return existing
    parent, child = resolve_parent(layer, site_spec.output)
    site = AdapterSite(
        existing, tower, index, site_name, hidden_size, tower_spec.channels_first_of(layer, site_spec)
    )
    site.train(existing.training)
    setattr(parent, child, site)
    return site


def _check_placements(model: nn.Module, spec: BackboneSpec, towers: list[str], config: AdapterConfig) -> None:
    """Refuse a placement the spec cannot express (missing norm path or position, a residual the block computes in
    its own code) in any selected layer, before anything is wrapped."""
    if config.reads == "output":
        return
    for tower_name, tower, index, block, site_name, site_spec in _selected_sites(model, spec, towers, config):
        try:
            plan_site(tower, site_spec, block, config.reads, family=spec.family, site_name=site_name)
        except ValueError as error:
            raise ValueError(
                f"Tower {tower_name!r} layer {index} ({type(block).__name__}): {error}"
            ) from None


def _selected_sites(model: nn.Module, spec: BackboneSpec, towers: list[str], config: AdapterConfig):
    """(tower name, tower, layer index, block, site name, site spec) of every site ``config`` adapts, in order."""
    for tower_name in towers:
        tower = spec.towers[tower_name]
        layers = tower_blocks(model, tower)
        for index in config.layer_indices(len(layers)):
            block = layers[index]
            for site_name, site_spec in tower.sites(block).items():
                if site_name in config.sites:
                    yield tower_name, tower, index, block, site_name, site_spec


def _place(layer: nn.Module, tower, site_spec, site: AdapterSite, reads: str, family: str) -> None:
    """Give the site its placement (once) and tap its stream where the placement says."""
    if site.placement is None:
        site.placement = plan_site(tower, site_spec, layer, reads, family=family, site_name=site.site)
    if after_norm(site.placement, reads):
        _ensure_block_output_site(layer, site_spec.norm, site)
        return
    _ensure_tap(layer, site.placement.tap_path, site, site.placement.tap_output)


def _ensure_block_output_site(layer: nn.Module, norm_path: str, site: AdapterSite) -> None:
    """Adapters reading a post-LN block's output run after its LayerNorm: wrap that LayerNorm (once)."""
    if not isinstance(resolve_path(layer, norm_path), BlockOutputSite):
        parent, child = resolve_parent(layer, norm_path)
        norm = getattr(parent, child)
        setattr(parent, child, BlockOutputSite(norm, site).train(norm.training))


def _ensure_tap(layer: nn.Module, path: str | None, site: AdapterSite, output: bool = False) -> None:
    """Stream-reading adapters read a tensor entering another module (the sublayer input, or the LayerNorm input
    on pre-LN blocks), or leaving one (a downsampling shortcut, ``output``); tap it there."""
    if path is None or site.tap is not None:
        return
    module = resolve_path(layer, path)
    if not output and (module is site or module is site.base_layer):
        return
    tap_class = OutputTap if output else InputTap
    if type(module) is not tap_class:
        parent, child = resolve_parent(layer, path)
        module = tap_class(module).train(module.training)
        setattr(parent, child, module)
    site.attach_tap(module)


def _apply_active(model: nn.Module, active: tuple[str, ...]) -> None:
    for site in iter_sites(model):
        site.set_active(active)
        site.set_trainable(active)
        site.fusions.requires_grad_(False)


def _unwrap_empty_sites(model: nn.Module) -> None:
    state = get_state(model)
    for tower_name, layers in tower_layers(model, state.spec).items():
        tower = state.spec.towers[tower_name]
        for layer in layers:
            for site_spec in tower.sites(layer).values():
                site = resolve_path(layer, site_spec.output)
                if not isinstance(site, AdapterSite):
                    continue
                _unwrap_block_output_site(layer, site_spec.norm, site)
                needs_tap = any(adapter.reads != "output" for adapter in site.adapters.values())
                if site.tap is not None and not needs_tap:
                    tap = site.tap
                    site.attach_tap(None)
                    if not tap.readers:  # a tap two sites share stays while the other reads it
                        _replace(layer, site.placement.tap_path, tap.base_layer)
                if not needs_tap:
                    site.placement = None
                if not len(site.adapters):
                    _replace(layer, site_spec.output, site.base_layer)


def _unwrap_block_output_site(layer: nn.Module, norm_path: str | None, site: AdapterSite) -> None:
    """Restore the LayerNorm once no adapter of ``site`` reads the block's output after it."""
    if not norm_path or any(after_norm(site.placement, a.reads) for a in site.adapters.values()):
        return
    wrapper = resolve_path(layer, norm_path)
    if isinstance(wrapper, BlockOutputSite):
        _replace(layer, norm_path, wrapper.base_layer)


def _replace(layer: nn.Module, path: str, module: nn.Module) -> None:
    parent, child = resolve_parent(layer, path)
    setattr(parent, child, module)


def _device_of(module: nn.Module):
    for tensor in module.parameters():
        return tensor.device
    return None
