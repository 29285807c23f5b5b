"""What a backbone spec is: module paths, nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

NORM_POSITIONS = ("pre", "post")


@dataclass(frozen=True)
class SiteSpec:
    """Where one sublayer lives inside a transformer block.

    ``output`` names the module whose output is the sublayer's output before its residual add; ``input`` names the
    module whose first argument is the sublayer's input (for parallel adapters), when that is a different module.
    A path may list alternatives separated by ``|`` (module names that changed between library versions).
    ``norm`` names the block's LayerNorm that belongs to this sublayer: on a post-LN block the one applied to
    ``sublayer output + residual``, on a pre-LN block the one applied before the sublayer (its input is the
    residual stream). Placements that read the residual stream need it (see ``docs/placements.md``).
    """

    output: str
    input: str | None = None
    norm: str | None = None


@dataclass(frozen=True)
class TowerSpec:
    """One stack of transformer blocks: where the blocks are and where their sublayers are."""

    layers: str
    """Path from the model root to the ``ModuleList`` of blocks."""
    attn: SiteSpec
    ffn: SiteSpec
    hidden_size: str
    """Attribute path, relative to one block, that gives the hidden size (e.g. ``mlp.fc2.out_features``)."""
    batch_args: tuple[str, ...] = ()
    """Block ``forward`` arguments besides the hidden state that carry the batch in dim 0 (attention masks, position
    biases): ``Parallel`` repeats them where it replicates the batch inside the tower."""
    parallel_branch: bool = True
    """False where the model's code after the blocks indexes their output with the input batch (CLIP's text tower
    pools at each sample's end-of-text token), so ``Parallel`` cannot replicate the batch inside this tower."""
    norm_position: str | Callable[[nn.Module], str] | None = None
    """``"post"`` (LayerNorm after each residual add: BERT, Wav2Vec2-base) or ``"pre"`` (LayerNorm before each
    sublayer: ViT, CLIP); a function of one block where a family has both. None: unknown, so placements that
    depend on it are refused."""

    def norm_position_of(self, block: nn.Module) -> str | None:
        position = self.norm_position(block) if callable(self.norm_position) else self.norm_position
        if position is not None and position not in NORM_POSITIONS:
            raise ValueError(f"norm_position must be one of {NORM_POSITIONS} or None, got {position!r}.")
        return position


@dataclass(frozen=True)
class BackboneSpec:
    """A backbone family: the model classes it covers and its towers."""

    family: str
    class_names: tuple[str, ...]
    towers: dict[str, TowerSpec] = field(default_factory=dict)

    def matches(self, model: nn.Module) -> bool:
        return type(model).__name__ in self.class_names


def resolve_path(root: nn.Module, path: str) -> object:
    """Follow a dotted attribute path; ``a|b`` tries ``a`` first, then ``b``."""
    errors = []
    for candidate in path.split("|"):
        node: object = root
        try:
            for part in candidate.split("."):
                node = node[int(part)] if part.isdigit() else getattr(node, part)
            return node
        except (AttributeError, IndexError, TypeError) as error:
            errors.append(f"{candidate}: {error}")
    raise AttributeError(f"Cannot resolve {path!r} on {type(root).__name__} ({'; '.join(errors)})")


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
