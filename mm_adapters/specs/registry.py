"""The registry of backbone families and spec detection.

Detection, for a model nobody passed a spec for:

1. a Hugging Face task-head model (``ViTForImageClassification``) is adapted through its base model
   (``model.vit``); the head is left alone;
2. a family matches the model by class (the class or any base class) or by ``config.model_type``;
3. each tower of the family is kept when its paths fit the model, or taken from a delegate submodule
   (open_clip's ``visual.trunk``, a timm model); towers that fit neither are left out with a note (partial support);
4. no family at all (and ``auto``): :func:`mm_adapters.specs.auto.auto_spec` traces one forward on a tiny input to
   find the blocks and checks what it found with probe adapters.
"""

from __future__ import annotations

import dataclasses
import logging

from torch import nn

from .auto import NoAutoSpec, auto_spec
from .base import BackboneSpec, TowerSpec, block_hidden_size, prefixed, resolve_path, tower_blocks
from .family import Family

logger = logging.getLogger("mm_adapters")

FAMILIES: dict[str, Family] = {}
BACKBONE_SPECS: dict[str, BackboneSpec] = {}

RENAMED_FAMILIES = {"open_clip_custom_text": "open_clip"}
"""Family names that adapter folders saved by earlier versions carry, and the family that now serves them."""


def current_family_name(name: str) -> str:
    """The family an earlier version's folder name ``name`` now belongs to (``name`` itself when not renamed)."""
    return RENAMED_FAMILIES.get(name, name)


def register_family(family: Family) -> Family:
    """Add a backbone family entry (spec, task wrapper, examples, demos)."""
    FAMILIES[family.name] = family
    BACKBONE_SPECS[family.name] = family.spec
    return family


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone family by its spec alone; after this, :func:`mm_adapters.add_adapter` recognises its models."""
    register_family(Family(spec=spec))
    return spec


def supported_models() -> list[str]:
    return sorted(
        {name for spec in BACKBONE_SPECS.values() for name in spec.class_names}
        | {f"model_type={t}" for spec in BACKBONE_SPECS.values() for t in spec.model_types}
    )


def detect_spec(model: nn.Module, auto: bool = True, example_inputs=None) -> BackboneSpec:
    """The spec for ``model``: a registered family (through a task head's base model, by class or model type, tower by
    tower), else with ``auto`` the automatic spec traced on ``example_inputs`` (default: inputs built from the
    model's forward signature and config). Raises ValueError naming what was tried."""
    spec = find_spec(model)
    if spec is not None:
        for note in spec.notes:
            logger.warning("mm_adapters: %s", note)
        return spec
    if auto:
        try:
            return auto_spec(model, example_inputs=example_inputs)
        except NoAutoSpec as error:
            raise no_spec_error(model, str(error)) from error
    raise no_spec_error(model)


def find_spec(model: nn.Module, prefix: str = "") -> BackboneSpec | None:
    """A registered family's spec fitted to ``model`` (paths prefixed by ``prefix``), or None."""
    base = _base_model(model)
    if base is not None:
        name, submodule = base
        return find_spec(submodule, prefixed(prefix, name))
    family = next((spec for spec in BACKBONE_SPECS.values() if spec.matches(model)), None)
    if family is None:
        return None
    towers, notes = {}, []
    for tower_name, tower in family.towers.items():
        if tower_fits(model, tower):
            towers[tower_name] = dataclasses.replace(tower, layers=prefixed(prefix, tower.layers))
            continue
        delegated = _delegated(model, family, tower_name, prefix)
        if delegated is not None:
            for sub_name, sub_tower in delegated.towers.items():
                towers[tower_name if len(delegated.towers) == 1 else f"{tower_name}_{sub_name}"] = sub_tower
            notes += delegated.notes
            continue
        notes.append(
            f"{type(model).__name__} ({family.family}): tower {tower_name!r} is not adapted; "
            f"{_describe_tower_module(model, family, tower_name)}"
        )
    # no tower fits: a variant the family's paths do not describe (a MaxxVit without attention blocks): auto spec
    if not towers:
        return None
    return dataclasses.replace(family, towers=towers, notes=tuple(notes))


def tower_fits(model: nn.Module, tower: TowerSpec) -> bool:
    try:
        check_tower(model, tower)
    except (AttributeError, IndexError, TypeError, ValueError):
        return False
    return True


def check_tower(model: nn.Module, tower: TowerSpec) -> None:
    layers = tower_blocks(model, tower)
    if len(layers) == 0:
        kinds = f" (no {' or '.join(tower.block_types)} in it)" if tower.block_types else ""
        raise ValueError(f"{tower.layers!r} is empty{kinds}")
    for block in layers:
        for site in tower.sites(block).values():
            resolve_path(block, site.output)
            if site.input:
                resolve_path(block, site.input)
            if site.norm:
                resolve_path(block, site.norm)
        block_hidden_size(block, tower)


def check_spec(model: nn.Module, spec: BackboneSpec) -> None:
    """Raise a clear error if any path of the spec does not resolve on the model."""
    for tower_name, tower in spec.towers.items():
        try:
            check_tower(model, tower)
        except (AttributeError, IndexError, TypeError, ValueError) as error:
            raise ValueError(
                f"Backbone spec {spec.family!r} does not fit {type(model).__name__} (tower {tower_name!r}): {error}"
            ) from error


def no_spec_error(model: nn.Module, found: str = "") -> ValueError:
    return ValueError(
        f"mm_adapters has no backbone spec for {type(model).__name__}.{(' ' + found) if found else ''} "
        f"Supported: {', '.join(n for n in supported_models() if '=' not in n)} (and their subclasses, task-head "
        "models and Hugging Face model types, docs/supported_models.md). Describe yours "
        "with mm_adapters.BackboneSpec (module paths of its block list and of each block's attention and FFN "
        "output) and pass it as spec=... or register it with mm_adapters.register_backbone."
    )


def _base_model(model: nn.Module) -> tuple[str, nn.Module] | None:
    """A Hugging Face task-head model's base model (``base_model_prefix``), when it is a separate submodule."""
    name = getattr(type(model), "base_model_prefix", "")
    submodule = getattr(model, name, None) if isinstance(name, str) and name else None
    if isinstance(submodule, nn.Module) and submodule is not model:
        return name, submodule
    return None


def base_model_of(model: nn.Module) -> nn.Module:
    """The innermost base model of a Hugging Face task-head model (``model.vit``), else ``model`` itself."""
    while (base := _base_model(model)) is not None:
        model = base[1]
    return model


def _delegated(model: nn.Module, family: BackboneSpec, tower: str, prefix: str) -> BackboneSpec | None:
    path = family.delegates.get(tower)
    if not path:
        return None
    try:
        submodule = resolve_path(model, path)
    except AttributeError:
        return None
    if not isinstance(submodule, nn.Module):
        return None
    found = find_spec(submodule, prefixed(prefix, path))
    if found is not None:
        return found
    try:  # a submodule no family covers (a timm trunk of another class): its automatic spec, seen from here
        traced = auto_spec(submodule)
    except (NoAutoSpec, ValueError):
        return None
    towers = {
        name: dataclasses.replace(t, layers=prefixed(prefixed(prefix, path), t.layers))
        for name, t in traced.towers.items()
    }
    return dataclasses.replace(traced, towers=towers)


def _describe_tower_module(model: nn.Module, family: BackboneSpec, tower: str) -> str:
    path = family.delegates.get(tower)
    if path:
        try:
            module = resolve_path(model, path)
            return (
                f"{path} is a {type(module).__name__}, which no registered family covers and whose blocks the "
                "automatic spec cannot adapt (no attention blocks)."
            )
        except AttributeError:
            pass
    first = family.towers[tower].layers.split("|")[0].split(".")[0]
    module = getattr(model, first, None)
    what = f"{first} is a {type(module).__name__}" if module is not None else f"it has no {first!r}"
    return f"{what}, without the block paths {family.towers[tower].layers!r}."
