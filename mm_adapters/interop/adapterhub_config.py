"""AdapterHub (``adapters`` 1.x) bottleneck and fusion configs <-> :class:`AdapterConfig`, exactly or not at all.

A field we cannot express with the same outputs is refused with its name; fields that only change how fresh weights
are drawn (``init_weights_seed``, ``value_initialized``) or only act in training with the same eval outputs
(``dropout``, ``regularization``, ``dropout_prob``) are carried over or ignored, as documented in docs/placements.md.
"""

from __future__ import annotations

from typing import Any

from ..config import AdapterConfig
from ..errors import AdapterLoadError

# BnConfig defaults of adapters 1.3.0 (configuration/adapter_config.py): older files omit fields added later
BN_DEFAULTS: dict[str, Any] = {
    "original_ln_before": False,
    "original_ln_after": True,
    "ln_before": False,
    "ln_after": False,
    "init_weights": "bert",
    "init_weights_seed": None,
    "is_parallel": False,
    "scaling": 1.0,
    "use_gating": False,
    "residual_before_ln": True,
    "adapter_residual_before_ln": False,
    "inv_adapter": None,
    "inv_adapter_reduction_factor": None,
    "cross_adapter": False,
    "leave_out": [],
    "dropout": 0.0,
    "phm_layer": False,
    "phm_dim": 4,
    "factorized_phm_W": True,
    "shared_W_phm": False,
    "shared_phm_rule": True,
    "factorized_phm_rule": False,
    "phm_c_init": "normal",
    "phm_init_range": 0.0001,
    "learn_phm": True,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "phm_rank": 1,
    "phm_bias": True,
    "stochastic_depth": 0.0,
}
# fields whose value only matters when another field we refuse is set
_PHM_FIELDS = {k for k in BN_DEFAULTS if "phm" in k or k in ("factorized_phm_W", "shared_W_phm")} | {
    "hypercomplex_nonlinearity"
}
# AdapterHub's activation names (transformers' get_activation) with the same function as ours
ACTIVATIONS = {"relu": "relu", "swish": "swish", "silu": "silu", "gelu": "gelu", "tanh": "tanh"}
INITS = {"bert": "bert", "mam_adapter": "zero", "houlsby": "trunc_normal"}
LEARNED_SCALINGS = ("channel", "learned")
FUSION_EXACT = {
    "key": True,
    "query": True,
    "value": True,
    "query_before_ln": False,
    "residual_before": False,
    "temperature": False,
}
FUSION_DYNAMIC = {
    **FUSION_EXACT,
    "regularization": True,
    "value_before_softmax": True,
    "value_initialized": True,
    "dropout_prob": None,
}


def _refuse(where: str, field: str, value: Any, why: str) -> AdapterLoadError:
    return AdapterLoadError(
        f"{where}: AdapterHub config field {field}={value!r} is not supported by mm_adapters ({why}); the adapter "
        "is not loaded rather than loaded with different outputs."
    )


def from_adapterhub(
    config: dict, layer_counts: dict[str, int], where: str, *, legacy_activation: bool = False
) -> AdapterConfig:
    """An AdapterHub bottleneck config -> ours. ``layer_counts``: layers per tower in AdapterHub's numbering order
    (CLIP: text first, then vision); ``legacy_activation``: the file has no ``version`` (adapter-transformers 2.x),
    whose ``"gelu"`` meant ``gelu_new``."""
    if not isinstance(config, dict):
        raise AdapterLoadError(f"{where}: 'config' must be a JSON object.")
    architecture = config.get("architecture")
    if architecture is not None:
        raise _refuse(where, "architecture", architecture, "only bottleneck adapters have a counterpart")
    for required in ("mh_adapter", "output_adapter", "reduction_factor", "non_linearity"):
        if required not in config:
            raise AdapterLoadError(
                f"{where}: the AdapterHub config has no {required!r}; it is not a bottleneck adapter."
            )
    data = {**BN_DEFAULTS, **config}
    exact = {
        "ln_before": (False, "a new LayerNorm before the bottleneck"),
        "ln_after": (False, "a new LayerNorm after the bottleneck"),
        "use_gating": (False, "gated adapters"),
        "phm_layer": (False, "PHM (Compacter) projections"),
        "cross_adapter": (False, "cross-attention adapters"),
    }
    for field, (value, why) in exact.items():
        if data[field] != value:
            raise _refuse(where, field, data[field], why)
    if data["inv_adapter"] is not None:
        raise _refuse(where, "inv_adapter", data["inv_adapter"], "invertible adapters")
    if config.get("invertible_adapter"):
        raise _refuse(where, "invertible_adapter", config["invertible_adapter"], "invertible adapters")
    reduction = data["reduction_factor"]
    if isinstance(reduction, dict):
        raise _refuse(where, "reduction_factor", reduction, "per-layer reduction factors")
    if isinstance(data["scaling"], str) and data["scaling"] not in LEARNED_SCALINGS:
        raise _refuse(where, "scaling", data["scaling"], f"the learned scalings are {LEARNED_SCALINGS}")
    activation = str(data["non_linearity"]).lower()
    if legacy_activation and activation == "gelu":
        activation = "gelu_new"
    if legacy_activation and activation == "gelu_orig":
        activation = "gelu"
    if activation not in ACTIVATIONS:
        raise _refuse(
            where,
            "non_linearity",
            data["non_linearity"],
            f"the activations that match are {sorted(ACTIVATIONS)}",
        )
    if data["init_weights"] not in INITS:
        raise _refuse(where, "init_weights", data["init_weights"], f"the initialisations are {sorted(INITS)}")
    mode, reads = _placement(data, where)
    sites = tuple(s for s, on in (("attn", data["mh_adapter"]), ("ffn", data["output_adapter"])) if on)
    if not sites:
        raise _refuse(where, "mh_adapter/output_adapter", False, "an adapter needs at least one of them")
    layers, towers = _layers_from_leave_out(data["leave_out"] or [], layer_counts, where)
    return AdapterConfig(
        sites=sites,
        mode=mode,
        reads=reads,
        reduction_factor=reduction,
        activation=ACTIVATIONS[activation],
        scaling=data["scaling"] if isinstance(data["scaling"], str) else float(data["scaling"]),
        dropout=float(data["dropout"]),
        # AdapterHub's ParallelAdapter.forward never applies its stochastic depth
        drop_path=0.0 if mode == "parallel" else float(data["stochastic_depth"] or 0.0),
        layers=layers,
        towers=towers,
        init=INITS[data["init_weights"]],
    )


def _placement(data: dict, where: str) -> tuple[str, str]:
    """(mode, reads) of AdapterHub's ``is_parallel`` / ``original_ln_before`` / ``residual_before_ln`` /
    ``original_ln_after``; the combinations without a counterpart are refused."""
    before, after, residual_before = (
        data["original_ln_before"],
        data["original_ln_after"],
        data["residual_before_ln"],
    )
    if data["is_parallel"] or not before:
        if not after:
            raise _refuse(where, "original_ln_after", after, "skipping the block's residual and LayerNorm")
        if data["is_parallel"]:
            return "parallel", "residual"
        if residual_before not in (True, False):
            raise _refuse(where, "residual_before_ln", residual_before, "only True or False")
        return "sequential", "output"
    if residual_before is True and after:
        return "sequential", "residual_sum"  # Pfeiffer (SeqBnConfig)
    if residual_before is False and not after:
        return "sequential", "block_output"  # AdapterPlusConfig
    raise _refuse(
        where,
        "residual_before_ln/original_ln_after",
        (residual_before, after),
        "with original_ln_before only (True, True), Pfeiffer's, or (False, False), Adapter+'s",
    )


def _layers_from_leave_out(
    leave_out: list, layer_counts: dict[str, int], where: str
) -> tuple[str | tuple[int, ...], tuple[str, ...] | None]:
    """AdapterHub numbers layers across towers (CLIP: text 0..T-1, then vision T..); ours are per tower, one set for
    every tower. Refuse a ``leave_out`` that leaves different layers in different towers."""
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in leave_out):
        raise AdapterLoadError(f"{where}: leave_out must be a list of layer indices, got {leave_out!r}.")
    kept: dict[str, tuple[int, ...]] = {}
    offset = 0
    for tower, count in layer_counts.items():
        kept[tower] = tuple(i for i in range(count) if offset + i not in leave_out)
        offset += count
    present = {tower: layers for tower, layers in kept.items() if layers}
    if not present:
        raise _refuse(where, "leave_out", leave_out, "it leaves out every layer")
    if len(set(present.values())) != 1:
        raise _refuse(where, "leave_out", leave_out, "towers would keep different layers")
    layers = next(iter(present.values()))
    towers = tuple(present) if len(present) < len(kept) else None
    counts = {layer_counts[t] for t in present}
    return ("all" if len(counts) == 1 and len(layers) == counts.pop() else layers), towers


def to_adapterhub(config: AdapterConfig, layer_counts: dict[str, int]) -> dict:
    """Our config -> the AdapterHub bottleneck config with the same outputs; refuses what AdapterHub cannot express."""
    if config.reads == "sublayer_input" and config.is_parallel:
        raise ValueError(
            "reads='sublayer_input' has no AdapterHub counterpart on pre-LN blocks (ParBnConfig reads the residual "
            "stream); save this adapter in the mm_adapters format."
        )
    if config.is_parallel and config.drop_path > 0:
        raise ValueError(
            "AdapterHub's parallel adapters never apply stochastic depth; this config sets drop_path. Save it in "
            "the mm_adapters format, or use drop_path=0."
        )
    if config.bottleneck_dim is not None:
        raise ValueError(
            "AdapterHub configs size the bottleneck by reduction_factor only; this config sets bottleneck_dim. "
            "Save it in the mm_adapters format, or use reduction_factor."
        )
    leave_out, offset = [], 0
    for tower, count in layer_counts.items():
        selected = config.towers is None or tower in config.towers
        kept = set(config.layer_indices(count)) if selected else set()
        leave_out += [offset + i for i in range(count) if i not in kept]
        offset += count
    return {
        **BN_DEFAULTS,
        "mh_adapter": "attn" in config.sites,
        "output_adapter": "ffn" in config.sites,
        "reduction_factor": config.reduction_factor,
        "non_linearity": config.activation,
        "original_ln_before": config.reads in ("residual_sum", "block_output"),
        "original_ln_after": config.reads != "block_output",
        "residual_before_ln": config.reads != "block_output",
        "is_parallel": config.is_parallel,
        "scaling": config.scaling if isinstance(config.scaling, str) else float(config.scaling),
        "dropout": float(config.dropout),
        "stochastic_depth": float(config.drop_path),
        "init_weights": {v: k for k, v in INITS.items()}[config.init],
        "leave_out": leave_out,
    }


def check_fusion(config: dict, where: str) -> None:
    """Refuse an AdapterHub fusion config whose outputs our fusion layer does not compute."""
    if not isinstance(config, dict):
        raise AdapterLoadError(f"{where}: 'config' must be a JSON object.")
    for field, value in FUSION_EXACT.items():
        if field not in config:
            raise AdapterLoadError(f"{where}: the AdapterHub fusion config has no {field!r}.")
        if bool(config[field]) != value:
            raise _refuse(where, field, config[field], f"only {field}={value} (AdapterHub's dynamic fusion)")
