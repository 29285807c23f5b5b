"""What a backbone spec is: module paths, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

NORM_POSITIONS = ("pre", "post", "res_post")


@dataclass(frozen=True)
class SiteSpec:
    """Where one sublayer lives inside a transformer block.

    ``output`` names the module whose output is the sublayer's output before its residual add; ``input`` names the
    module whose first argument is the sublayer's input (for parallel adapters), when that is a different module.
    A path may list alternatives separated by ``|`` (module names that changed between library versions).
    ``norm`` names the block's LayerNorm that belongs to this sublayer: on a post-LN block the one applied to
    ``sublayer output + residual``, on a pre-LN block the one applied before the sublayer (its input is the
    residual stream), on a res-post-norm block the one applied to the sublayer output before its residual add (the
    site then wraps it, see :meth:`on_res_post_block`). Placements that read the residual stream need it (see
    ``docs/placements.md``).
    """

    output: str
    input: str | None = None
    norm: str | None = None
    residual: str | None = None
    """Module whose output is the residual this sublayer's output is added to, on blocks where that is not the stream
    entering the block (a downsampling shortcut, ``shortcut(x) + attn(norm1(x))``; MViT's ``shortcut_proj_mlp``).
    Where a block has no such module (the path does not resolve, or gives None or an ``nn.Identity``) the stream is
    tapped as usual; where it has one, placements read its output and ``reads="sublayer_input"`` is refused."""
    untapped_residual: str | None = None
    """Module that a block runs on the residual inside its own code, so that no module's output is the residual
    (MViT's pooled attention shortcut): on blocks that have it (not None), reads that need the stream are refused."""
    hidden_size: str = ""
    """Attribute path, relative to one block, giving this site's output width where a block's sites differ (MViT's
    attention before a widening FFN: ``attn.proj.out_features``); empty: the block's width (``TowerSpec.hidden_size``)."""
    channels_first: bool | None = None
    """This sublayer's output carries channels in dim 1 where it differs from its tower's ``channels_first`` (NextViT's
    token attention in an NCHW block); None: the tower's."""
    reads_stream: bool = False
    """On a pre-LN block, this sublayer has no LayerNorm in front of it and reads the stream itself (FastViT's ConvMlp
    normalises inside): placements tap the stream at its input, with no ``norm``."""

    def on_res_post_block(self) -> SiteSpec:
        """Where this site sits on a res-post-norm block, ``x + norm(f(x))`` (Swin-v2, EVA post-norm; ``x + f(x)``
        where ``norm`` is None, LeViT): on the output of ``norm``, the tensor the block adds to its stream, with the
        sublayer's own input as that stream."""
        return SiteSpec(
            output=self.norm or self.output, input=self.input or self.output, hidden_size=self.hidden_size,
            channels_first=self.channels_first,
        )  # fmt: skip


@dataclass(frozen=True)
class TowerSpec:
    """One stack of transformer blocks: where the blocks are and where their sublayers are."""

    layers: str
    """Path from the model root to the ``ModuleList`` of blocks; ``*`` walks every child of a container, so
    ``layers.*.blocks`` lists the blocks of every stage of a hierarchical model (Swin) in order."""
    attn: SiteSpec
    ffn: SiteSpec
    hidden_size: str = ""
    """Attribute path, relative to one block, that gives the hidden size (e.g. ``mlp.fc2.out_features``); empty:
    the ``out_features`` of the last ``nn.Linear`` of the FFN output module, read per block."""
    batch_args: tuple[str, ...] = ()
    """Block ``forward`` arguments besides the hidden state that carry the batch in dim 0 (attention masks, position
    biases): ``Parallel`` repeats them where it replicates the batch inside the tower."""
    parallel_branch: bool = True
    """False where the model's code after the blocks indexes their output with the input batch (CLIP's text tower
    pools at each sample's end-of-text token), so ``Parallel`` cannot replicate the batch inside this tower."""
    norm_position: str | Callable[[nn.Module], str | None] | None = None
    """``"post"`` (LayerNorm after each residual add: BERT, Wav2Vec2-base), ``"pre"`` (LayerNorm before each
    sublayer: ViT, CLIP) or ``"res_post"`` (no LayerNorm on the stream; each sublayer's output, normalised by its
    ``SiteSpec.norm`` if it has one, is added to the sublayer's input: Swin-v2, EVA post-norm, LeViT); a function
    of one block where a family has several. None: unknown, so placements that depend on it are refused."""
    cross_attn: SiteSpec | None = None
    """Cross-attention of an encoder-decoder's decoder block (Whisper's ``encoder_attn``), adapted as site
    ``"cross_attn"``; None for towers without one."""
    block_types: tuple[str, ...] = ()
    """Class names of the tower's blocks where ``layers`` holds other modules too (the convolution blocks of a hybrid
    stage): the blocks are then the outermost modules of these classes inside what ``layers`` resolves to, in module
    order (CoAtNet's transformer blocks between its MBConv blocks, MaxViT's window and grid attention units)."""
    channels_first: bool | Callable[[nn.Module], bool] = False
    """True where the blocks' hidden states carry channels in dim 1 (NCHW, timm's ``TransformerBlock2d``): the sites
    move them to the last dim around the adapters. A function of one block where a family has both layouts."""

    def norm_position_of(self, block: nn.Module) -> str | None:
        position = self.norm_position(block) if callable(self.norm_position) else self.norm_position
        if position is not None and position not in NORM_POSITIONS:
            raise ValueError(f"norm_position must be one of {NORM_POSITIONS} or None, got {position!r}.")
        return position

    def channels_first_of(self, block: nn.Module, site: SiteSpec | None = None) -> bool:
        """Whether ``block``'s hidden states (``site``'s output, where it says) carry channels in dim 1."""
        if site is not None and site.channels_first is not None:
            return site.channels_first
        return bool(self.channels_first(block) if callable(self.channels_first) else self.channels_first)

    def sites(self, block: nn.Module | None = None) -> dict[str, SiteSpec]:
        """The adaptable sublayers of one block by site name (``attn``, ``ffn`` and, if present, ``cross_attn``);
        given the ``block``, where they sit on it (res-post-norm blocks move them onto their norms)."""
        found = {"attn": self.attn, "ffn": self.ffn}
        if self.cross_attn is not None:
            found["cross_attn"] = self.cross_attn
        if block is not None and self.norm_position_of(block) == "res_post":
            found = {name: site.on_res_post_block() for name, site in found.items()}
        return found


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone family: the model classes it covers and its towers."""

    family: str
    class_names: tuple[str, ...] = ()
    """Model classes of the family; a model matches when one of them is its class or a base class of it."""
    towers: dict[str, TowerSpec] = field(default_factory=dict)
    model_types: tuple[str, ...] = ()
    """Hugging Face ``config.model_type`` values of the family (matched when no class name does)."""
    delegates: dict[str, str] = field(default_factory=dict)
    """Tower name -> path of a submodule that is itself a backbone (open_clip's ``visual.trunk`` is a timm model):
    when the tower's own paths do not fit, the submodule's spec gives that tower."""
    notes: tuple[str, ...] = ()
    """What detection left out (towers it could not adapt, and why)."""

    def matches(self, model: nn.Module) -> bool:
        if any(cls.__name__ in self.class_names for cls in type(model).__mro__):
            return True
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        return isinstance(model_type, str) and model_type in self.model_types


def _children(node: object) -> list:
    if isinstance(node, nn.ModuleDict):
        return list(node.values())
    if isinstance(node, (nn.ModuleList, nn.Sequential, list, tuple)):
        return list(node)
    raise TypeError(f"'*' needs a module container, found {type(node).__name__}")


def _follow(root: nn.Module, candidate: str) -> object:
    nodes: list = [root]
    for part in candidate.split("."):
        if part == "*":
            nodes = [child for node in nodes for child in _children(node)]
        else:
            nodes = [node[int(part)] if part.isdigit() else getattr(node, part) for node in nodes]
    if "*" not in candidate.split("."):
        return nodes[0]
    # ``stages.*.blocks``: each stage's block list, concatenated
    return [child for node in nodes for child in (_children(node) if _is_container(node) else [node])]


def _is_container(node: object) -> bool:
    return isinstance(node, (nn.ModuleList, nn.Sequential))


def resolve_path(root: nn.Module, path: str) -> object:
    """Follow a dotted attribute path; ``a|b`` tries ``a`` first, then ``b``; ``*`` gives a list over children."""
    errors = []
    for candidate in path.split("|"):
        try:
            return _follow(root, candidate)
        except (AttributeError, IndexError, TypeError) as error:
            errors.append(f"{candidate}: {error}")
    raise AttributeError(f"Cannot resolve {path!r} on {type(root).__name__} ({'; '.join(errors)})")


def matching_path(root: nn.Module, path: str) -> str:
    """The alternative of ``path`` that resolves on ``root`` (``attn|attns.0`` -> ``attn``)."""
    for candidate in path.split("|"):
        try:
            _follow(root, candidate)
            return candidate
        except (AttributeError, IndexError, TypeError):
            continue
    raise AttributeError(f"Cannot resolve {path!r} on {type(root).__name__}")


def resolve_parent(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module that holds the last component of ``path`` (first matching alternative), and that name."""
    for candidate in path.split("|"):
        parent_path, _, child = candidate.rpartition(".")
        try:
            parent = resolve_path(root, parent_path) if parent_path else root
        except AttributeError:
            continue
        if hasattr(parent, child):
            return parent, child
    raise AttributeError(f"Cannot resolve {path!r} on {type(root).__name__}")


def prefixed(prefix: str, path: str) -> str:
    """``path`` (with its ``|`` alternatives) seen from ``prefix``'s parent module."""
    return "|".join(f"{prefix}.{candidate}" for candidate in path.split("|")) if prefix else path


def tower_blocks(root: nn.Module, tower: TowerSpec) -> list[nn.Module] | nn.ModuleList:
    """The blocks of ``tower`` on ``root``: what ``tower.layers`` resolves to, or, with ``tower.block_types``, the
    outermost modules of those classes inside it. Every caller that walks a tower's layers asks this."""
    found = resolve_path(root, tower.layers)
    if not tower.block_types:
        return found
    blocks: list[nn.Module] = []
    for node in found if isinstance(found, list) else [found]:
        inside: set[int] = set()
        for module in node.modules():
            if id(module) in inside:
                continue
            if type(module).__name__ in tower.block_types:
                blocks.append(module)
                inside.update(id(m) for m in module.modules())
    return blocks


def optional_module(block: nn.Module, path: str | None) -> nn.Module | None:
    """The module at ``path`` where the block has one (None for a missing path, a None attribute or an Identity)."""
    if not path:
        return None
    try:
        module = resolve_path(block, path)
    except AttributeError:
        return None
    module = (
        getattr(module, "base_layer", module)
        if type(module).__name__ in ("InputTap", "OutputTap")
        else module
    )
    return None if module is None or isinstance(module, nn.Identity) else module


def _last_linear_width(module: nn.Module) -> int | None:
    module = getattr(module, "base_layer", module)  # an adapter site: look at the wrapped sublayer
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return int(linears[-1].out_features) if linears else None


def site_hidden_size(block: nn.Module, tower: TowerSpec, site_name: str) -> int:
    """The width of one site's output: its ``SiteSpec.hidden_size`` when it resolves (MViT's stage-transition blocks
    widen between attention and FFN), else the block's (:func:`block_hidden_size`). Not the last Linear of each
    sublayer: attention modules may end in other projections (CaiT's talking heads mix heads after ``proj``)."""
    site = {"attn": tower.attn, "ffn": tower.ffn, "cross_attn": tower.cross_attn}.get(site_name)
    if site is not None and site.hidden_size:
        try:
            return int(resolve_path(block, site.hidden_size))
        except AttributeError:
            pass
    return block_hidden_size(block, tower)


def block_hidden_size(block: nn.Module, tower: TowerSpec) -> int:
    """The hidden size of one block: ``tower.hidden_size`` when it resolves, else the ``out_features`` of the last
    Linear of the FFN output module (then of the attention output module)."""
    if tower.hidden_size:
        try:
            return int(resolve_path(block, tower.hidden_size))
        except AttributeError:
            pass
    for site in (tower.ffn, tower.attn):
        width = _last_linear_width(resolve_path(block, site.output))
        if width is not None:
            return width
    raise AttributeError(
        f"Cannot read the hidden size of {type(block).__name__}: no nn.Linear in its sublayers."
    )
