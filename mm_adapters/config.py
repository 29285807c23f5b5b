"""Adapter configuration: one dataclass, with the three placements as named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

ACTIVATIONS = ("relu", "gelu", "swish", "silu", "tanh")
MODES = ("sequential", "parallel")
SITES = ("attn", "cross_attn", "ffn")  # in execution order inside a block
INITS = ("zero", "bert", "trunc_normal")
LEARNED_SCALINGS = ("channel", "learned")  # AdapterHub's names: one learned factor per channel, or one in all
# What the adapter reads, per mode (the math per block type is in docs/placements.md):
READS = {
    # "output": the sublayer output h (Houlsby); "residual_sum": the sum after the residual add, through the
    # block's LayerNorm on post-LN blocks (Pfeiffer, AdapterHub's original_ln_before=True); "block_output": what the
    # block outputs after the sublayer's residual add (and its LayerNorm on post-LN blocks) (Adapter+)
    "sequential": ("output", "residual_sum", "block_output"),
    # "residual": the residual stream entering the sublayer (AdapterHub, AdaptFormer); "sublayer_input": what the
    # sublayer itself reads (after the LayerNorm on pre-LN blocks; the same tensor on post-LN blocks)
    "parallel": ("residual", "sublayer_input"),
}


@dataclass(frozen=True)
class AdapterConfig:
    """Where bottleneck adapters go and what they look like.

    The three published placements are presets: :meth:`houlsby`, :meth:`pfeiffer` and :meth:`parallel`.
    """

    sites: tuple[str, ...] = ("ffn",)
    """Sublayers that get an adapter: ``"attn"`` (attention output), ``"ffn"`` (feed-forward output) and/or
    ``"cross_attn"`` (cross-attention output, in towers that have one: Whisper's decoder; others skip it)."""
    mode: str = "sequential"
    """``"sequential"``: ``h + up(act(down(h)))`` on the sublayer output ``h``; ``"parallel"``: ``h + scaling * adapter(x)``
    beside the sublayer, ``x`` being its input."""
    reduction_factor: float | None = 16
    """Bottleneck size as ``hidden_size / reduction_factor``; ignored when ``bottleneck_dim`` is set."""
    bottleneck_dim: int | None = None
    """Explicit bottleneck size; overrides ``reduction_factor``."""
    activation: str = "relu"
    """Nonlinearity between the projections: relu, gelu, swish (= silu) or tanh."""
    scaling: float | str = 1.0
    """Multiplier on the adapter output (parallel adapters use 4.0, as in He et al. 2022 and AdapterHub); or learned:
    ``"channel"``, one factor per hidden channel, ``"learned"``, one factor in all (both start at 1, AdapterHub's)."""
    dropout: float = 0.0
    """Dropout on the bottleneck activations during training."""
    drop_path: float = 0.0
    """Stochastic depth while training: the adapter output of each sample is dropped with this probability and the
    kept ones scaled by ``1 / (1 - drop_path)`` (torchvision's ``StochasticDepth(mode="row")``, timm's ``DropPath``)."""
    layers: str | tuple[int, ...] = "all"
    """Layers that get adapters: ``"all"``, ``"last:K"`` for the top K layers, or a tuple of indices (negative ones count from the top)."""
    towers: tuple[str, ...] | None = None
    """For multi-tower backbones (CLIP: ``"vision"``, ``"text"``), which towers get adapters; None means all."""
    reads: str | None = None
    """What the adapter reads; sequential: ``"output"`` (default), ``"residual_sum"`` or ``"block_output"``; parallel: ``"residual"``
    (default) or ``"sublayer_input"``. See ``docs/placements.md``."""
    init: str = "zero"
    """``"zero"``: the up-projection starts at zero (the adapted model is exactly the base model); ``"bert"``: both
    projections drawn from N(0, 0.02), biases zero (AdapterHub's default); ``"trunc_normal"``: both drawn from
    N(0, 0.01) truncated to +-0.02, biases zero (AdapterHub's ``init_weights="houlsby"``, Adapter+'s)."""

    def __post_init__(self) -> None:
        if self.reads is None and self.mode in MODES:
            object.__setattr__(self, "reads", READS[self.mode][0])
        object.__setattr__(self, "sites", tuple(self.sites))
        if not isinstance(self.layers, str):
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.towers is not None:
            object.__setattr__(self, "towers", tuple(self.towers))
        self._validate()

    def _validate(self) -> None:
        if not self.sites or any(site not in SITES for site in self.sites):
            raise ValueError(f"sites must be a non-empty subset of {SITES}, got {self.sites!r}.")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}.")
        if self.reads not in READS[self.mode]:
            raise ValueError(
                f"reads must be one of {READS[self.mode]} for mode={self.mode!r}, got {self.reads!r}."
            )
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}.")
        if self.bottleneck_dim is None and (self.reduction_factor is None or not self.reduction_factor > 0):
            raise ValueError(
                f"reduction_factor must be a positive number (got {self.reduction_factor!r}); "
                "or set bottleneck_dim to an explicit size."
            )
        if self.bottleneck_dim is not None and (
            isinstance(self.bottleneck_dim, bool)
            or not isinstance(self.bottleneck_dim, int)
            or self.bottleneck_dim < 1
        ):
            raise ValueError(f"bottleneck_dim must be a positive integer, got {self.bottleneck_dim!r}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if isinstance(self.scaling, str):
            if self.scaling not in LEARNED_SCALINGS:
                raise ValueError(
                    f"scaling must be a number or one of {LEARNED_SCALINGS} (learned), got {self.scaling!r}."
                )
        elif (
            isinstance(self.scaling, bool)
            or not isinstance(self.scaling, (int, float))
            or self.scaling != self.scaling
        ):
            raise ValueError(f"scaling must be a number or one of {LEARNED_SCALINGS}, got {self.scaling!r}.")
        if (
            isinstance(self.drop_path, bool)
            or not isinstance(self.drop_path, (int, float))
            or not 0.0 <= self.drop_path < 1.0
        ):
            raise ValueError(f"drop_path must be a probability in [0, 1), got {self.drop_path!r}.")
        _check_layers(self.layers)

    # -- presets -----------------------------------------------------------------------------------------------
    @classmethod
    def houlsby(cls, **overrides: Any) -> AdapterConfig:
        """Houlsby et al. 2019: sequential adapters after the attention and the feed-forward sublayers."""
        return cls(**{"sites": ("attn", "ffn"), "activation": "swish", "reduction_factor": 16, **overrides})

    @classmethod
    def pfeiffer(cls, **overrides: Any) -> AdapterConfig:
        """Pfeiffer et al. 2021 (AdapterHub's SeqBnConfig): one sequential adapter after the feed-forward block,
        reading the sum after its residual add. Post-LN: ``LN(A(LN(z)) + z)``; pre-LN: ``z + A(z)``; ``z = h + x``."""
        defaults = {"sites": ("ffn",), "reads": "residual_sum", "activation": "relu", "reduction_factor": 16}
        return cls(**{**defaults, **overrides})

    @classmethod
    def houlsby_ffn(cls, **overrides: Any) -> AdapterConfig:
        """One sequential adapter on the feed-forward output ``h`` before the residual add: ``h + A(h)`` (Houlsby's
        FFN adapter alone; what ``pfeiffer()`` computed before mm_adapters 0.2, and what its old folders load as)."""
        return cls(
            **{
                "sites": ("ffn",),
                "reads": "output",
                "activation": "relu",
                "reduction_factor": 16,
                **overrides,
            }
        )

    @classmethod
    def parallel(cls, **overrides: Any) -> AdapterConfig:
        """He et al. 2022 scaled parallel adapter beside the feed-forward sublayer (AdapterHub's ParBn), reading the
        residual stream; ``reads="sublayer_input"`` feeds it the FFN's LayerNorm output instead on pre-LN blocks."""
        defaults = {
            "sites": ("ffn",),
            "mode": "parallel",
            "reads": "residual",
            "activation": "relu",
            "reduction_factor": 2,
            "scaling": 4.0,
        }
        return cls(**{**defaults, **overrides})

    @classmethod
    def adapter_plus(cls, **overrides: Any) -> AdapterConfig:
        """Steitz & Roth 2024, Adapter+ (AdapterHub's AdapterPlusConfig): one sequential adapter after the whole
        block, reading its output ``y`` (``LN(z)`` post-LN, ``z`` pre-LN; ``z = h + x``): ``y + s * DropPath(A(y))``,
        GELU, reduction 96, learned per-channel ``s`` from 1, stochastic depth 0.1, trunc-normal(0.01) init."""
        defaults = {
            "sites": ("ffn",),
            "reads": "block_output",
            "activation": "gelu",
            "reduction_factor": 96,
            "scaling": "channel",
            "drop_path": 0.1,
            "init": "trunc_normal",
        }
        return cls(**{**defaults, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> AdapterConfig:
        """Build a preset by name: ``houlsby``, ``pfeiffer``, ``parallel``, ``houlsby_ffn`` or ``adapter_plus``."""
        presets = {
            "houlsby": cls.houlsby,
            "pfeiffer": cls.pfeiffer,
            "parallel": cls.parallel,
            "houlsby_ffn": cls.houlsby_ffn,
            "adapter_plus": cls.adapter_plus,
        }
        if name not in presets:
            raise ValueError(f"Unknown adapter preset {name!r}; choose one of {sorted(presets)}.")
        return presets[name](**overrides)

    # -- derived values ----------------------------------------------------------------------------------------
    @property
    def is_parallel(self) -> bool:
        return self.mode == "parallel"

    def bottleneck_size(self, hidden_size: int) -> int:
        """The bottleneck width for a backbone of this hidden size."""
        if self.bottleneck_dim is not None:
            return self.bottleneck_dim
        return max(1, int(hidden_size // self.reduction_factor))

    def layer_indices(self, num_layers: int) -> list[int]:
        """Sorted indices of the layers that get adapters, for a tower of ``num_layers`` layers."""
        if self.layers == "all":
            return list(range(num_layers))
        if isinstance(self.layers, str):
            k = int(self.layers.split(":", 1)[1])
            return list(range(max(0, num_layers - k), num_layers))
        indices = set()
        for index in self.layers:
            if not -num_layers <= index < num_layers:
                raise ValueError(f"Layer index {index} is out of range for a tower of {num_layers} layers.")
            indices.add(index % num_layers)
        return sorted(indices)

    # -- serialisation -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["sites"] = list(self.sites)
        if not isinstance(self.layers, str):
            data["layers"] = list(self.layers)
        if self.towers is not None:
            data["towers"] = list(self.towers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error, not silently dropped."""
        if not isinstance(data, dict):
            raise ValueError(f"An adapter config must be a JSON object, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown adapter config keys {unknown}; the known keys are {sorted(known)}.")
        try:
            return cls(**data)
        except TypeError as error:
            raise ValueError(f"Invalid adapter config {data}: {error}") from error


def _check_layers(layers: Any) -> None:
    if isinstance(layers, str):
        if layers == "all":
            return
        head, _, count = layers.partition(":")
        if head == "last" and count.isdigit() and int(count) > 0:
            return
        raise ValueError(f'layers must be "all", "last:K" (K > 0) or a tuple of indices, got {layers!r}.')
    if not layers or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
        raise ValueError(f"layers must be a non-empty tuple of integer indices, got {layers!r}.")
