"""A block's residual sublayers, from the trace: for each residual add, the outermost module holding a projection
whose output feeds it; on a parallel-residual block (GPT-J, GPT-NeoX, Phi: ``r + attn(LN(r)) + mlp(LN'(r))``) both
modules whose outputs are summed before the stream is added, each with the stream ``r`` as its residual."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .trace import Trace


@dataclass
class Site:
    path: str
    attention: bool
    add_output: int
    residual: int
    module_input: int | None
    shape: tuple = ()
    """Shape of the residual sum."""
    output_shape: tuple = ()
    """Shape of the sublayer module's output."""


def residual_sites(trace: Trace, block: nn.Module, kinds: tuple[type, ...]) -> list[Site]:
    """The block's residual sublayers in order: for each residual add, the outermost module holding one of ``kinds``
    whose output feeds it."""
    call = trace.calls.get(id(block))
    if call is None or call.input_id is None:
        return []
    names = {id(m): n for n, m in block.named_modules() if n}
    widths: set[int] = set()
    for tensor in trace.keep:
        if id(tensor) == call.input_id:
            # the hidden size; a block that takes NCHW maps and adds tokens (DaViT) adds at the channel width
            widths = {tensor.shape[-1], tensor.shape[1]} if tensor.dim() == 4 else {tensor.shape[-1]}
            break
    adds = [a for a in trace.adds if call.start < a[0] <= call.end and a[4][-1] in widths]
    add_outputs = {a[1] for a in adds}
    sites: list[Site] = []
    previous = call.start
    for step, out_id, left, right, shape in adds:
        stops = {call.input_id} | (add_outputs - {out_id})
        found = {operand: _walk_back(trace, operand, names, stops, kinds) for operand in (left, right)}
        parallel = _parallel(trace, names, adds, step, out_id, (found[left], found[right]), stops, kinds)
        if parallel:
            sites += [site for site in parallel if all(s.path != site.path for s in sites)]
            previous = step
            continue
        # ``x + f(x)``: the operand that the other's sublayer reads is the residual (NextViT's ``x`` comes out of a
        # patch embedding)
        order = ((left, right), (right, left))
        if found[right] is not None and trace.calls[id(found[right])].input_id == left:
            order = ((right, left),)
        for operand, other in order:
            module = found[operand]
            if module is None:
                continue
            path = names[id(module)]
            if not any(s.path == path for s in sites):
                # attention ran since the previous residual add: this add closes the attention sublayer
                attention = any(previous < s <= step for s in trace.attention_steps)
                output = trace.calls[id(module)].output_id
                output_shape = next((tuple(t.shape) for t in trace.keep if id(t) == output), ())
                sites.append(
                    Site(
                        path, attention, out_id, other, trace.calls[id(module)].input_id, shape, output_shape
                    )
                )
                previous = step
            break
    return sites


def _parallel(
    trace: Trace,
    names: dict[int, str],
    adds: list,
    step: int,
    out_id: int,
    modules: tuple,
    stops: set[int],
    kinds: tuple[type, ...],
) -> list[Site] | None:
    """The two sublayers of a parallel-residual block, attention first: both operands of this add are sublayer
    outputs (one ran attention, the other did not), and a later add adds their sum to the stream (an operand no
    sublayer produced)."""
    if None in modules or modules[0] is modules[1]:
        return None
    later = next(((s, o, a, b) for s, o, a, b, _ in adds if s > step and out_id in (a, b)), None)
    if later is None:
        return None
    stream = later[3] if later[2] == out_id else later[2]
    if _walk_back(trace, stream, names, stops | {out_id}, kinds) is not None:
        return None
    calls = [trace.calls[id(m)] for m in modules]
    attending = [any(c.start < s <= c.end for s in trace.attention_steps) for c in calls]
    if sorted(attending) != [False, True]:
        return None  # two FFN experts summed (a shared expert beside routed ones) are not attention and FFN
    sites = []
    for call, attention in sorted(zip(calls, attending, strict=True), key=lambda pair: not pair[1]):
        output_shape = next((tuple(t.shape) for t in trace.keep if id(t) == call.output_id), ())
        shape = next((tuple(t.shape) for t in trace.keep if id(t) == later[1]), ())
        sites.append(
            Site(names[id(call.module)], attention, later[1], stream, call.input_id, shape, output_shape)
        )
    return sites


def _walk_back(
    trace: Trace,
    start: int,
    names: dict[int, str],
    stops: set[int],
    kinds: tuple[type, ...],
    limit: int = 400,
):
    frontier, seen = [start], set()
    while frontier and len(seen) < limit:
        tensor = frontier.pop(0)
        if tensor in seen or tensor in stops:
            continue
        seen.add(tensor)
        candidates = [
            m
            for m in trace.producers.get(tensor, [])
            if id(m) in names and any(isinstance(x, kinds) for x in m.modules())
        ]
        if candidates:
            return min(candidates, key=lambda m: names[id(m)].count("."))  # the outermost of them
        frontier.extend(trace.parents.get(tensor, []))
    return None
