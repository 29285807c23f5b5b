"""``mm_adapters.describe(model)``: the spec ``add_adapter`` would use for a model, in words."""

from __future__ import annotations

from torch import nn

from .specs import BackboneSpec, block_hidden_size, detect_spec, resolve_path, tower_blocks
from .specs.base import matching_path


def describe(
    model: nn.Module, spec: BackboneSpec | None = None, *, show: bool = True, example_inputs=None
) -> str:
    """Print (with ``show``) and return the spec for ``model``: family, and per tower the block list, the number of
    blocks, their hidden sizes, the attention and FFN sites, the norm position, and what was left out.
    ``example_inputs`` as for :func:`mm_adapters.add_adapter` (what the automatic spec traces)."""
    spec = spec or detect_spec(model, example_inputs=example_inputs)
    lines = [f"{type(model).__name__}: family {spec.family!r}"]
    for name, tower in spec.towers.items():
        blocks = tower_blocks(model, tower)
        widths = sorted({block_hidden_size(block, tower) for block in blocks})
        first = blocks[0]
        kinds = "/".join(dict.fromkeys(type(block).__name__ for block in blocks))
        lines.append(
            f"  tower {name!r}: {matching_path(model, tower.layers)} ({len(blocks)} x {kinds}, hidden "
            f"{'/'.join(map(str, widths))}, norm {tower.norm_position_of(first) or 'unknown'})"
        )
        for kind, site in tower.sites(first).items():
            module = resolve_path(first, site.output)
            extra = "".join(
                f", {label} {matching_path(first, value)}"
                for label, value in (("input", site.input), ("norm", site.norm))
                if value
            )
            if tower.channels_first_of(first, site):
                extra += ", channels first (NCHW)"
            if site.reads_stream:
                extra += ", reads the stream itself"
            lines.append(f"    {kind}: {matching_path(first, site.output)} ({type(module).__name__}){extra}")
    lines += [f"  note: {note}" for note in spec.notes]
    text = "\n".join(lines)
    if show:
        print(text)
    return text
