"""The towers of a traced model: block lists, the attention and FFN sublayers feeding each block's residual adds,
their LayerNorms (pre-LN, post-LN, res-post-norm), layout (NCHW) and widths."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from torch import nn

from ..base import SiteSpec, TowerSpec, resolve_path, tower_blocks
from .kinds import MatrixHolder, linear_kinds, weight_kinds, width_attribute
from .notes import unadapted_notes
from .sites import Site, residual_sites
from .trace import Trace, trace_forward, views_of


def _has_weights(module: nn.Module) -> bool:
    """A module that can be a sublayer: it holds a Linear (or Conv1D) or (NCHW blocks: FastViT, LeViT-conv) a
    convolution."""
    kinds = weight_kinds()
    return any(isinstance(m, kinds) for m in module.modules())


def _output_width(module: nn.Module) -> int | None:
    """The output width of the module's last Linear (or Conv1D), else of its last convolution."""
    for kinds in (linear_kinds(), (nn.Conv1d, nn.Conv2d)):
        found = [m for m in module.modules() if isinstance(m, kinds)]
        if found:
            return int(getattr(found[-1], width_attribute(found[-1])))
    return None


def _is_norm(module: nn.Module) -> bool:
    """A normalisation layer, not a block that ends in one (TinyViT's ``ConvNorm``)."""
    return "norm" in type(module).__name__.lower() and not any(
        isinstance(m, weight_kinds()) for m in module.modules()
    )


_CONTAINERS = (nn.ModuleList, nn.Sequential)


def _block_lists(model: nn.Module) -> list[tuple[str, list[nn.Module], tuple[str, ...]]]:
    """Lists of blocks of one class, as (path, blocks, block types to pick): ``nn.ModuleList`` / ``nn.Sequential``
    children; in a list of equal-length groups (DaViT's (spatial, channel) pairs), the blocks at each position
    (``stages.0.blocks.*.1``); in a list of several classes (NextViT's conv and transformer blocks), those of each
    class (``TowerSpec.block_types``)."""
    lists = []
    for name, module in model.named_modules():
        if not (isinstance(module, _CONTAINERS) and len(module) and name):
            continue
        children = list(module)
        classes = list(dict.fromkeys(type(child) for child in children))
        if all(isinstance(child, _CONTAINERS) for child in children):
            if all(len(child) == len(children[0]) for child in children):
                for position in range(len(children[0])):
                    blocks = [child[position] for child in children]
                    if len({type(b) for b in blocks}) == 1 and _can_be_block(blocks[0]):
                        lists.append((f"{name}.*.{position}", blocks, ()))
                # the groups themselves, where the parent's loop adds the residuals (``x = attn(x) + x``)
                lists.append((name, children, ()))
        elif len(classes) == 1:
            if _can_be_block(children[0]):
                lists.append((name, children, ()))
        else:
            for cls in classes:
                blocks = [child for child in children if type(child) is cls]
                if _can_be_block(blocks[0]):
                    lists.append((name, blocks, (cls.__name__,)))
    return lists


def _can_be_block(module: nn.Module) -> bool:
    return not isinstance(module, (*_CONTAINERS, *weight_kinds())) and _has_weights(module)


def _norm_names(trace: Trace, block: nn.Module) -> dict[int, str]:
    return {id(m): n for n, m in block.named_modules() if n and _is_norm(m) and id(m) in trace.calls}


def _norm_taking(trace: Trace, norms: dict[int, str], tensor: int) -> str | None:
    return next((n for key, n in norms.items() if trace.calls[key].input_id == tensor), None)


def _norm_feeding(trace: Trace, norms: dict[int, str], site: Site, stops: set[int]) -> str | None:
    """The LayerNorm whose output reaches the site's input (through reshapes, windows, ...)."""
    frontier, seen = [site.module_input], set()
    stops = stops | {
        site.residual
    }  # a norm on the stream itself (TinyViT's local conv) is not the sublayer's
    while frontier and len(seen) < 200:
        tensor = frontier.pop(0)
        if tensor is None or tensor in seen or tensor in stops:
            continue
        seen.add(tensor)
        for module in trace.producers.get(tensor, []):
            if id(module) in norms:
                return norms[id(module)]
        frontier.extend(trace.parents.get(tensor, []))
    return None


def _norm_layout(
    trace: Trace, block: nn.Module, attn: Site, ffn: Site
) -> tuple[str | None, list[str | None]]:
    """Post-LN when a LayerNorm of the block takes the FFN's residual sum; pre-LN when LayerNorms feed both
    sublayers and nothing in the block normalises the FFN's sum; res-post-norm when the FFN reads the stream itself
    (see the module docstring); else unknown."""
    norms = _norm_names(trace, block)
    after_attn, after_ffn = (
        _norm_taking(trace, norms, attn.add_output),
        _norm_taking(trace, norms, ffn.add_output),
    )
    normalised = {trace.calls[key].output_id for key in norms}
    if after_attn and after_ffn and ffn.residual in normalised:
        # the FFN's residual is a normalised sum (the attention's; a decoder's cross-attention's)
        return "post", [after_attn, after_ffn]
    stops = {trace.calls[id(block)].input_id, attn.add_output, ffn.add_output}
    found = [_norm_feeding(trace, norms, site, stops) for site in (attn, ffn)]
    if all(found):
        return "pre", found
    if not any(found) and ffn.module_input == ffn.residual:
        # the FFN reads the stream itself and adds to it: res-post-norm, ``x + N(f(x))`` (or ``x + f(x)``)
        return "res_post", [
            _norm_taking(trace, norms, _output_of(trace, block, site)) for site in (attn, ffn)
        ]
    return None, found


def _output_of(trace: Trace, block: nn.Module, site: Site) -> int | None:
    return trace.calls[id(resolve_path(block, site.path))].output_id


def _input_path(trace: Trace, block: nn.Module, site: Site) -> str | None:
    """The outermost module of the block that takes the residual stream as its first input (post-LN taps there)."""
    matches = [
        name
        for name, module in block.named_modules()
        if name and id(module) in trace.calls and trace.calls[id(module)].input_id == site.residual
        and _has_weights(module)
    ]  # fmt: skip
    return min(matches, key=lambda n: n.count(".")) if matches else None


def _towers(
    trace: Trace, path: str, blocks: list[nn.Module], block_types: tuple[str, ...] = ()
) -> list[TowerSpec]:
    """The towers over ``blocks``: one per attention / FFN pair of the first block (a stage module may hold several
    pairs), an empty list where it has none."""
    block = blocks[0]
    group = isinstance(block, _CONTAINERS)  # a parent's loop adds the residuals around its members
    if group:
        _record_group_call(trace, blocks)
    if id(block) not in trace.calls:
        return []  # never ran in the traced forward (a tower the inputs did not reach)
    # sublayers of Linears, else (NCHW) of convolutions too, else of any weight matrix (experts as parameters)
    for kinds in (linear_kinds(), weight_kinds(), (*weight_kinds(), MatrixHolder)):
        sites = residual_sites(trace, block, kinds)
        chain = _residual_chain(trace, block, sites)
        # adds inside a sublayer (attention biases, FocalNet's gated context sum) are not sites
        if len(chain) >= 2:
            sites = chain
        if not any(s.attention for s in sites) and len(sites) >= 2 and not group:
            # an attention-free token mixer (pooling, LSTM, focal modulation): MetaFormer
            sites = [dataclasses.replace(sites[0], attention=True), *sites[1:]]
        towers = []
        for pair in _pairs(sites):
            attention = next((s for s in pair if s.attention), None)
            later = [s for s in pair[pair.index(attention) + 1 :] if not s.attention] if attention else []
            if attention is not None and later:
                between = pair[pair.index(attention) + 1 : pair.index(later[-1])]
                # an encoder-decoder's decoder block: a second attention between self-attention and FFN (Whisper)
                cross = next((s for s in between if s.attention), None)
                towers.append(_tower_of(trace, path, block, attention, later[-1], block_types, cross))
        if towers:
            return towers
    return []


def _pairs(sites: list[Site]) -> list[list[Site]]:
    """The sites split where an attention follows an FFN: a stage module with several attention / FFN pairs."""
    pairs: list[list[Site]] = []
    for site in sites:
        if not pairs or (site.attention and not pairs[-1][-1].attention):
            pairs.append([])
        pairs[-1].append(site)
    return pairs


def _record_group_call(trace: Trace, groups: list[nn.Module]) -> None:
    """A group (``nn.ModuleList([attn, ff])``) is never called; its span in the trace runs from its first member's
    call to the next group's, its input is what its first member read."""
    first = trace.calls.get(id(groups[0][0]))
    if first is None or id(groups[0]) in trace.calls:
        return
    following = trace.calls.get(id(groups[1][0])) if len(groups) > 1 else None
    end = following.start if following is not None else trace.step
    trace.calls[id(groups[0])] = dataclasses.replace(first, module=groups[0], start=first.start, end=end)


def _tower_of(
    trace: Trace,
    path: str,
    block: nn.Module,
    attention: Site,
    ffn: Site,
    block_types: tuple[str, ...],
    cross: Site | None = None,
) -> TowerSpec:
    position, norms = _norm_layout(trace, block, attention, ffn)
    reads_stream = [False, False]
    if (
        position is None
        and any(norms)
        and all(n or s.module_input == s.residual for n, s in zip(norms, (attention, ffn), strict=True))
    ):
        # pre-LN, with a sublayer that normalises inside and reads the stream itself (FastViT's ConvMlp)
        position, reads_stream = "pre", [n is None for n in norms]
    if (
        position == "pre"
        and not all(
            _stream_is_residual(trace, block, norm, site)
            for norm, site in zip(norms, (attention, ffn), strict=True)
        )
        and not _parallel_form(trace, block, norms[1], attention, ffn)
    ):
        # EdgeNeXt adds its FFN to the block's input, not to what its LayerNorm reads: no tap gives that residual,
        # so placements that read the stream are refused rather than placed inexactly
        position = None
    specs = []
    for site, norm, direct in zip((attention, ffn), norms, reads_stream, strict=True):
        tap = _input_path(trace, block, site) if position == "post" else None
        channels_first = _channels_first(block, site)
        specs.append(
            SiteSpec(
                output=site.path, input=tap if tap != site.path else None, norm=norm, reads_stream=direct,
                hidden_size=_width_path(block, site, channels_first), channels_first=channels_first,
            )
        )  # fmt: skip
    return TowerSpec(
        layers=path, attn=specs[0], ffn=specs[1], norm_position=position, block_types=block_types,
        channels_first=bool(specs[1].channels_first), hidden_size=specs[1].hidden_size or specs[0].hidden_size,
        cross_attn=_cross_site(trace, block, cross, position) if cross is not None else None,
    )  # fmt: skip


def _cross_site(trace: Trace, block: nn.Module, cross: Site, position: str | None) -> SiteSpec:
    """The cross-attention site, with the norm of the layout the block's other sublayers have."""
    norms = _norm_names(trace, block)
    if position == "post":
        norm = _norm_taking(trace, norms, cross.add_output)
    elif position == "pre":
        norm = _norm_feeding(trace, norms, cross, {trace.calls[id(block)].input_id, cross.add_output})
    else:
        norm = _norm_taking(trace, norms, _output_of(trace, block, cross)) if position == "res_post" else None
    tap = _input_path(trace, block, cross) if position == "post" else None
    return SiteSpec(
        output=cross.path, input=tap if tap != cross.path else None, norm=norm,
        hidden_size=_width_path(block, cross, False),
    )  # fmt: skip


def _residual_chain(trace: Trace, block: nn.Module, sites: list[Site]) -> list[Site]:
    """The sites whose residual is the block's stream: its input, then each kept site's sum (not the adds inside a
    sublayer, such as FocalNet's gated context sum)."""
    stream = views_of(trace, trace.calls[id(block)].input_id)
    norms = [trace.calls[key] for key in _norm_names(trace, block)]
    kept = []
    for site in sites:
        if views_of(trace, site.residual) & stream:
            kept.append(site)
            stream |= views_of(trace, site.add_output)
            # a post-LN block's next residual is this sum normalised
            stream |= {
                n for call in norms if call.input_id in stream for n in views_of(trace, call.output_id)
            }
    return kept


def _parallel_form(trace: Trace, block: nn.Module, norm: str | None, attention: Site, ffn: Site) -> bool:
    """``r + attn(LN(r)) + mlp(LN'(r))`` written left to right: the FFN's LayerNorm reads the attention's residual
    ``r`` and the FFN is added to ``r + attn``; a parallel-residual block (docs/placements.md)."""
    tapped = trace.calls[id(resolve_path(block, norm))].input_id if norm else ffn.module_input
    return bool(views_of(trace, tapped) & views_of(trace, attention.residual)) and bool(
        views_of(trace, ffn.residual) & views_of(trace, attention.add_output)
    )


def _stream_is_residual(trace: Trace, block: nn.Module, norm: str | None, site: Site) -> bool:
    """Whether the tensor a pre-LN site's stream tap sees (its LayerNorm's input, or the sublayer's own input) is the
    residual its output is added to, up to reshapes and views."""
    tapped = trace.calls[id(resolve_path(block, norm))].input_id if norm else site.module_input
    return views_of(trace, tapped) & views_of(trace, site.residual) != set()


def _width_path(block: nn.Module, site: Site, channels_first: bool) -> str:
    """Where the site's width is written: the last Linear (or convolution) in it whose output width is the width the
    trace saw at its residual add (NextViT's attention is narrower than its block; FastViT's FFN has no Linear)."""
    shape = site.output_shape or site.shape
    width = shape[1 if channels_first else -1] if shape else None
    modules = list(resolve_path(block, site.path).named_modules())
    for kinds in (linear_kinds(), (nn.Conv1d, nn.Conv2d)):
        names = [
            (n, width_attribute(m)) for n, m in modules
            if isinstance(m, kinds) and getattr(m, width_attribute(m)) == width
        ]  # fmt: skip
        if names:
            return ".".join(part for part in (site.path, *names[-1]) if part)
    return ""


def _channels_first(block: nn.Module, site: Site) -> bool:
    """NCHW sublayers (FastViT, CoAtNet): the output is 4-d with the sublayer's output width in dim 1, not last."""
    width, shape = _output_width(resolve_path(block, site.path)), site.output_shape
    return len(shape) == 4 and width is not None and shape[1] == width != shape[-1]


def _tower_names(towers: list[TowerSpec]) -> list[str]:
    if len(towers) == 1:
        return ["blocks"]
    names = []
    paths = [tower.layers for tower in towers]
    for tower in towers:
        name = re.sub(r"[^A-Za-z0-9_]", "_", tower.layers.replace(".*", "")).strip("_") or "blocks"
        # several attention / FFN pairs per block: one tower each, named by its attention
        pair = (re.sub(r"[^A-Za-z0-9_]", "_", tower.attn.output),) if paths.count(tower.layers) > 1 else ()
        names.append("_".join((name, *tower.block_types, *pair)))
    return names


def _grouped(model: nn.Module, found: list[tuple[str, TowerSpec]]) -> list[tuple[str, TowerSpec]]:
    """Stage lists ``layers.0.blocks``, ``layers.1.blocks``... with the same sites become one ``layers.*.blocks``
    (when the pattern lists exactly their blocks: not where other stages are convolutional)."""
    groups: dict[tuple, list[tuple[str, TowerSpec]]] = {}
    for path, tower in found:
        key = (re.sub(r"\.\d+\.", ".*.", path), tower.attn, tower.ffn, tower.norm_position, tower.block_types)
        groups.setdefault(key, []).append((path, tower))
    merged = []
    for (pattern, *_), members in groups.items():
        count = sum(len(tower_blocks(model, tower)) for _, tower in members)
        candidate = TowerSpec(**{**members[0][1].__dict__, "layers": pattern})
        try:
            covers = len(tower_blocks(model, candidate)) == count
        except AttributeError:  # no such module in some stage (MobileViT's ``stages.*.1.transformer``)
            covers = False
        if len(members) > 1 and pattern != members[0][0] and covers:
            merged.append((pattern, candidate))
        else:
            merged.extend(members)
    return merged


def find_towers(model: nn.Module, run: Callable[[nn.Module], object]) -> dict[str, TowerSpec]:
    """The towers an automatic spec would use for ``model``, from one traced ``run(model)``."""
    return find_towers_and_notes(model, run)[0]


def find_towers_and_notes(
    model: nn.Module, run: Callable[[nn.Module], object]
) -> tuple[dict[str, TowerSpec], list[str]]:
    """The towers, and a note naming each block list left out with the reason (never half-adapted silently)."""
    trace = trace_forward(model, run)
    lists = _block_lists(model)
    found, claimed = [], set()
    for path, blocks, block_types in lists:
        inner = [entry for entry in lists if entry[0] != path and entry[0].startswith(path + ".")]
        if any(_towers(trace, *entry) for entry in inner):
            continue  # a list of stages whose own block lists qualify
        if id(blocks[0]) in claimed:
            continue  # DaViT's pairs: the blocks at each position are already a tower
        towers = _towers(trace, path, blocks, block_types)
        found += [(path, tower) for tower in towers]
        if towers:
            claimed.update(id(block) for block in blocks)
    notes = unadapted_notes(trace, lists, claimed)
    found = _grouped(model, found)
    towers = [tower for _, tower in found]
    return dict(zip(_tower_names(towers), towers, strict=True)), notes
