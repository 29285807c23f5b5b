"""Placement math: what an adapter at a site reads, per block type (the equations are in ``docs/placements.md``).

A site sits on a sublayer's output ``h`` (before the residual add). Besides ``h`` it may need the *stream*: the
tensor the block adds ``h`` to. On a post-LN block (BERT, Wav2Vec2-base) that is the sublayer input ``x``; on a pre-LN
block (ViT, CLIP, timm, open_clip) it is the residual ``r``, tapped where it enters the sublayer's LayerNorm. Every
placement returns ``h + delta``, so the block's own residual add and LayerNorm then give:

A res-post-norm block (Swin-v2, EVA post-norm: ``x + N(f(x))``; LeViT: ``x + f(x)``) has no LayerNorm on the stream:
its sites sit on ``N``'s output ``h = N(f(x))`` and the stream is the sublayer input ``x``, as on a pre-LN block
without the LayerNorm.

A parallel-residual block (GPT-J, GPT-NeoX, Falcon, Phi: ``r + f_a(LN_a(r)) + f_f(LN_f(r))``) is a pre-LN block whose
two sublayers share one stream: each site's stream is the block input ``r`` (never ``r + h_a``), so ``residual_sum``
gives ``r + h_a + h_f + A(r + h_f)`` and ``residual`` ``r + h_a + h_f + s*A(r)`` (docs/placements.md). Its towers say
``norm_position="pre"``; one LayerNorm both sublayers read carries one input tap both sites read
(:class:`mm_adapters.site.InputTap`).

=====================  ======================================  =====================================  =========================
``reads``              post-LN block output                    pre-LN block output                    res-post-norm block output
=====================  ======================================  =====================================  =========================
``output``             ``LN(x + h + A(h))``                    ``r + h + A(h)``                       ``x + h + A(h)``
``residual_sum``       ``LN(z + A(LN(z)))``, ``z = h + x``      ``z + A(z)``, ``z = r + h``             ``z + A(z)``, ``z = x + h``
``residual`` (par.)    ``LN(x + h + s*A(x))``                  ``r + h + s*A(r)``                     ``x + h + s*A(x)``
``sublayer_input``     ``LN(x + h + s*A(x))``                  ``r + h + s*A(LN(r))``                 ``x + h + s*A(x)``
``block_output``       ``y + A(y)``, ``y = LN(h + x)``         ``z + A(z)``, ``z = r + h``             ``z + A(z)``, ``z = x + h``
=====================  ======================================  =====================================  =========================

``block_output`` on a post-LN block adds the adapter after the block's LayerNorm, which the site cannot reach from
the sublayer output: a :class:`~mm_adapters.site.BlockOutputSite` wraps that LayerNorm (see :func:`after_norm`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .specs import optional_module, resolve_path

STREAM_READS = ("residual_sum", "residual", "sublayer_input", "block_output")
# reads that see the sum of the sublayer output and the stream (the block's output, on blocks without a post-LN)
SUM_READS = ("residual_sum", "block_output")


@dataclass(frozen=True)
class SitePlacement:
    """What a site knows about its block: the norm position, the block's LayerNorm for this sublayer, and whether
    the tapped stream is the residual before that LayerNorm (pre-LN) or the sublayer input."""

    norm_position: str | None
    norm: Callable[[torch.Tensor], torch.Tensor] | None
    stream_before_norm: bool
    tap_path: str | None
    tap_output: bool = False
    """The stream is the output of the module at ``tap_path`` (a downsampling shortcut), not its input."""


class ChannelsLastNorm:
    """A channels-first block's norm (``LayerNorm2d``) applied to the channels-last view the adapters see."""

    def __init__(self, norm: nn.Module) -> None:
        self.norm = norm

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(hidden.movedim(-1, 1)).movedim(1, -1)


def adapter_input(
    placement: SitePlacement | None, reads: str, hidden: torch.Tensor, stream: torch.Tensor | None
) -> torch.Tensor:
    """The tensor an adapter that ``reads`` this gets, at a site whose sublayer output is ``hidden``."""
    if reads == "output":
        return hidden
    if stream is None:
        raise RuntimeError(
            f"An adapter reading {reads!r} found no captured stream; was the sublayer skipped?"
        )
    if stream.shape != hidden.shape:
        raise RuntimeError(
            f"An adapter reading {reads!r} got a stream of shape {tuple(stream.shape)} for a sublayer output of shape "
            f"{tuple(hidden.shape)}: this sublayer does not see the residual stream as it is added (windowed "
            "attention, class-token-only layers); use reads='output' here (e.g. AdapterConfig.sites=('ffn',))."
        )
    if reads == "residual":
        return stream
    if reads == "sublayer_input":
        return placement.norm(stream) if placement is not None and placement.stream_before_norm else stream
    if reads == "block_output" and placement is not None and placement.norm_position == "post":
        raise RuntimeError(
            "An adapter reading 'block_output' on a post-LN block runs after the block's LayerNorm, so it cannot "
            "be composed (Fuse, Parallel, BatchSplit) with adapters on the sublayer output; activate it alone or "
            "stacked (a list of names)."
        )
    if reads in SUM_READS:
        total = hidden + stream
        return placement.norm(total) if placement.norm_position == "post" else total
    raise ValueError(f"Unknown reads {reads!r}.")


def plan_site(
    tower, site_spec, block: nn.Module, reads: str, *, family: str, site_name: str
) -> SitePlacement:
    """Where a site of ``block`` taps its stream, and which LayerNorm it uses; the same for every adapter there.

    Raises ``ValueError`` naming the spec field that is missing when ``reads`` needs it, before anything changes."""
    position = tower.norm_position_of(block)
    if (
        position == "res_post"
    ):  # ``site_spec`` is already the one on the block's norm (TowerSpec.sites(block))
        return SitePlacement(position, None, False, site_spec.input)
    where = f"backbone spec {family!r}, site {site_name!r}"
    if optional_module(block, site_spec.untapped_residual) is not None:
        raise ValueError(
            f"reads={reads!r} needs the residual stream, but here {where} adds its output to a residual that "
            f"{site_spec.untapped_residual!r} transforms inside the block's own code (no module outputs it); use "
            "reads='output' for this site (or leave this layer out with AdapterConfig.layers)."
        )
    if reads in ("residual", *SUM_READS) and position is None and family.startswith("auto:"):
        raise ValueError(
            f"reads={reads!r} needs the residual stream, but the automatic spec ({where}) found no tap that carries "
            f"the residual this sublayer is added to in {type(block).__name__} (no LayerNorm before it reads it, and "
            "the sublayer does not read it itself); use reads='output' (AdapterConfig.houlsby()), or pass spec= "
            "with TowerSpec.norm_position (mm_adapters.describe(model) prints what was found)."
        )
    if reads in ("residual", *SUM_READS) and position is None:
        raise ValueError(
            f"reads={reads!r} needs to know whether the blocks are pre-LN or post-LN, but {where} has no "
            "TowerSpec.norm_position; set it to 'pre', 'post' or 'res_post', or use reads='output' / 'sublayer_input'."
        )
    if optional_module(block, site_spec.residual) is not None:
        return _on_shortcut(tower, site_spec, block, reads, position, where)
    if position == "pre" and site_spec.reads_stream:
        return SitePlacement(position, None, False, site_spec.input)
    needs_norm = (position == "pre" and reads in ("residual", *SUM_READS)) or (
        position == "post" and reads in SUM_READS
    )
    if needs_norm and site_spec.norm is None:
        raise ValueError(
            f"reads={reads!r} on a {position}-LN block needs the block's LayerNorm, but {where} has no "
            "SiteSpec.norm; name it there (e.g. norm='norm2')."
        )
    norm = _norm(tower, block, site_spec) if position else None
    before_norm = position == "pre" and norm is not None
    return SitePlacement(position, norm, before_norm, site_spec.norm if before_norm else site_spec.input)


def _on_shortcut(
    tower, site_spec, block: nn.Module, reads: str, position: str | None, where: str
) -> SitePlacement:
    """A block that adds the sublayer output to ``shortcut(x)``: the stream is that module's output."""
    if reads == "sublayer_input":
        raise ValueError(
            f"reads='sublayer_input' cannot be placed here: {where} adds its output to the output of "
            f"{site_spec.residual!r} (a downsampling or widening shortcut), so what the sublayer reads is not the "
            "residual stream's normalised form; use reads='residual' (AdapterConfig.parallel's default)."
        )
    if position == "post" and reads in SUM_READS and site_spec.norm is None:
        raise ValueError(f"reads={reads!r} on a post-LN block needs SiteSpec.norm for {where}.")
    norm = _norm(tower, block, site_spec) if position == "post" else None
    return SitePlacement(position, norm, False, site_spec.residual, tap_output=True)


def after_norm(placement: SitePlacement | None, reads: str) -> bool:
    """Whether an adapter reading ``reads`` runs on the output of the block's LayerNorm (``block_output`` on a post-LN
    block: ``y + A(y)``, ``y = LN(h + x)``) rather than on the sublayer output."""
    return reads == "block_output" and placement is not None and placement.norm_position == "post"


def _norm(tower, block: nn.Module, site_spec) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if not site_spec.norm:
        return None
    norm = _unwrapped(resolve_path(block, site_spec.norm))
    return ChannelsLastNorm(norm) if tower.channels_first_of(block, site_spec) else norm


def _unwrapped(module: nn.Module) -> nn.Module:
    """The LayerNorm itself when an input tap (calling it would capture again) or a block-output site (calling it
    would add its adapters) already wraps it."""
    wrappers = ("InputTap", "BlockOutputSite")
    return getattr(module, "base_layer", module) if type(module).__name__ in wrappers else module
