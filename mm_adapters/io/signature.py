"""What a saved adapter must match in the model it is loaded into: the backbone signature and the site positions.

The signature (family, hidden size and layer count per tower) says whether the tensors fit. The site positions
(format 3 on) say whether they compute what they were trained to: per tower the path of its blocks, per site the
module the adapter wraps, the module whose input a parallel adapter reads, the sublayer's LayerNorm, and the
placement rule of the block (``pre`` / ``post`` / ``res_post`` norm). A family whose
sites moved (Swin-v2's Houlsby sites went onto the post-norms) would otherwise load old adapters silently into new
places. A module path the spec still lists as an alternative (``a|b``: a module renamed between library versions) is
the same place, so such a file loads as it is.
"""

from __future__ import annotations

import warnings

from torch import nn

from ..errors import AdapterLoadError
from ..specs import BackboneSpec, block_hidden_size, tower_blocks
from ..specs.base import matching_path
from ..specs.registry import current_family_name

_FIELDS = {"module": "output", "input": "input", "norm": "norm"}
"""Recorded key -> the :class:`~mm_adapters.specs.SiteSpec` field whose (matching) path it holds."""


def backbone_signature(model: nn.Module, spec: BackboneSpec) -> dict:
    """What an adapter file must match: family, and hidden size and layer count per tower."""
    towers = {}
    for name, tower in spec.towers.items():
        layers = tower_blocks(model, tower)
        towers[name] = {"hidden_size": block_hidden_size(layers[0], tower), "num_layers": len(layers)}
    return {"family": spec.family, "towers": towers}


def site_positions(model: nn.Module, spec: BackboneSpec) -> dict:
    """Where each tower's sites sit: ``{tower: {"blocks": path, "sites": {site: {"module", "input", "norm",
    "rule"}}}}`` (paths relative to a block; None where the spec names none); a site whose place differs between
    blocks lists one ``[module, input, norm, rule]`` per block under ``"per_block"`` instead."""
    positions = {}
    for name, tower in spec.towers.items():
        blocks = tower_blocks(model, tower)
        places: dict[str, list[tuple[str | None, ...]]] = {}
        for block in blocks:
            rule = tower.norm_position_of(block)
            for site, site_spec in tower.sites(block).items():
                place = tuple(_module_path(block, getattr(site_spec, field)) for field in _FIELDS.values())
                places.setdefault(site, []).append((*place, rule))
        positions[name] = {
            "blocks": _module_path(model, tower.layers),
            "sites": {site: _compact(found) for site, found in places.items()},
        }
    return positions


def check_signature(model: nn.Module, spec: BackboneSpec, saved: object, where: object) -> None:
    """Refuse an adapter saved for another backbone (family, widths, layer counts), saying what differs."""
    current = backbone_signature(model, spec)
    if isinstance(saved, dict) and isinstance(saved.get("family"), str):
        saved = {**saved, "family": current_family_name(saved["family"])}
    if saved != current:
        raise AdapterLoadError(
            f"The adapter in {where} was trained for {_describe(saved)} but this model is {_describe(current)}; "
            "load it into the backbone it was trained on."
        )


def check_positions(
    model: nn.Module, spec: BackboneSpec, saved: object, where: object, *, strict: bool = True
) -> None:
    """Compare the site positions a file recorded with those of the spec in force: equal (or renamed alternatives of
    one module) passes; anything else is refused, or with ``strict=False`` loaded with a warning."""
    moved = _moved(saved, site_positions(model, spec), spec)
    if not moved:
        return
    what = "; ".join(moved[:6])
    if strict:
        raise AdapterLoadError(
            f"The adapter in {where} was trained with its sites elsewhere than this version of mm_adapters puts "
            f"them ({what}), so it would compute something else here. Load it with the mm_adapters version that "
            "saved it, or pass strict=False to load it into today's sites anyway (outputs differ from training)."
        )
    warnings.warn(
        f"Loading the adapter in {where} into moved sites ({what}); its outputs differ from training.",
        stacklevel=3,
    )


def _moved(saved: object, current: dict, spec: BackboneSpec) -> list[str]:
    if not isinstance(saved, dict):
        return [f"the file's site positions are {saved!r}, not a mapping of towers"]
    moved = []
    for tower in sorted(set(saved) | set(current)):
        old, new = saved.get(tower), current.get(tower)
        if not isinstance(old, dict) or new is None:
            moved.append(
                f"tower {tower}: {'absent' if old is None else old!r} -> {'absent' if new is None else 'present'}"
            )
            continue
        layers = spec.towers[tower].layers
        if not _same_path(old.get("blocks"), new["blocks"], layers):
            moved.append(f"tower {tower} blocks: {old.get('blocks')!r} -> {new['blocks']!r}")
        old_sites = old.get("sites") if isinstance(old.get("sites"), dict) else {}
        for site in sorted(set(old_sites) | set(new["sites"])):
            if not _same_place(old_sites.get(site), new["sites"].get(site), spec.towers[tower], site):
                moved.append(
                    f"{tower}.{site}: {_place(old_sites.get(site))} -> {_place(new['sites'].get(site))}"
                )
    return moved


def _same_place(old: object, new: dict | None, tower, site: str) -> bool:
    if old == new:
        return True
    if not isinstance(old, dict) or new is None or "module" not in new or old.get("rule") != new["rule"]:
        return False
    site_spec = tower.sites().get(site)
    if site_spec is None or set(old) != set(new):
        return False
    if new["rule"] == "res_post":
        site_spec = site_spec.on_res_post_block()
    return all(
        _same_path(old.get(key), new[key], getattr(site_spec, field) or "") for key, field in _FIELDS.items()
    )


def _same_path(old: object, new: str | None, alternatives: str) -> bool:
    """Equal, or both alternatives of one ``a|b`` spec path (a module renamed between library versions)."""
    return old == new or (isinstance(old, str) and {old, new} <= set(alternatives.split("|")))


def _place(place: object) -> str:
    if isinstance(place, dict) and "module" in place:
        paths = ", ".join(f"{key} {place.get(key)!r}" for key in _FIELDS if key == "module" or place.get(key))
        return f"{paths}, rule {place.get('rule')!r}"
    return repr(place)


def _module_path(root: nn.Module, path: str | None) -> str | None:
    if not path:
        return None
    try:
        return matching_path(root, path)
    except AttributeError:
        return None


def _compact(found: list[tuple[str | None, ...]]) -> dict:
    if len(set(found)) == 1:
        return dict(zip((*_FIELDS, "rule"), found[0], strict=True))
    return {"per_block": [list(place) for place in found]}


def _describe(signature: object) -> str:
    if not isinstance(signature, dict) or not isinstance(signature.get("towers"), dict):
        return repr(signature)
    towers = ", ".join(
        f"{name}: hidden {info.get('hidden_size')}, {info.get('num_layers')} layers"
        if isinstance(info, dict)
        else name
        for name, info in signature["towers"].items()
    )
    return f"{signature.get('family')} ({towers})"
