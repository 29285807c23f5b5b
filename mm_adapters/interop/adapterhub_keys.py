"""Where AdapterHub (``adapters`` 1.x) keeps a bottleneck adapter's and a fusion layer's tensors, per family.

AdapterHub names tensors by module path: ``{layers}.{i}.{site path}.adapters.{name}.adapter_down.0.weight`` and
``{layers}.{i}.{site path}.adapter_fusion_layer.{a,b}.query.weight``, with the model's base prefix (``bert.``,
``roberta.``, ...) in front when it was saved from a model with heads. Ours are ``{tower}.{layer}.{site}.{param}``.
These templates are AdapterHub's layout, not the backbone's: they live here, beside the format they describe.
"""

from __future__ import annotations

import re

# family -> tower -> (AdapterHub layers path, {site: module path inside one layer})
LAYOUTS: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "hf_bert": {"text": ("encoder.layer", {"attn": "attention.output", "ffn": "output"})},
    "hf_vit": {"vision": ("encoder.layer", {"attn": "attention_adapters", "ffn": "output.output_adapters"})},
    "hf_clip": {
        "text": ("text_model.encoder.layers", {"attn": "attention_adapters", "ffn": "output_adapters"}),
        "vision": ("vision_model.encoder.layers", {"attn": "attention_adapters", "ffn": "output_adapters"}),
    },
}
# AdapterHub's own names for its parameters -> ours
ADAPTER_PARAMS = {"adapter_down.0": "down", "adapter_up": "up"}
# a learned scaling (``scaling="channel"`` / ``"learned"``) is a bare parameter there, a module's weight here
SCALING_PARAM, SCALE_KEY = "scaling", "scale.weight"
FUSION_PARAMS = {"query": "query", "key": "key", "value": "value"}
# adapter-transformers 2.x/3.x names that AdapterHub still renames on load
LEGACY_NAMES = {
    "attention_text_task_adapters": "adapters",
    "attention_text_lang_adapters": "adapters",
    "layer_text_task_adapters": "adapters",
    "layer_text_lang_adapters": "adapters",
    "invertible_lang_adapters": "invertible_adapters",
}


def layout(family: str) -> dict[str, tuple[str, dict[str, str]]]:
    if family not in LAYOUTS:
        raise ValueError(
            f"AdapterHub interop covers the families {sorted(LAYOUTS)}; this backbone is {family!r}, which AdapterHub "
            "does not support with the same module layout."
        )
    return LAYOUTS[family]


def to_adapterhub(family: str, key: str, name: str, kind: str = "adapters") -> str:
    """Our canonical key ``{tower}.{layer}.{site}.{param}`` -> AdapterHub's key for adapter (or fusion) ``name``."""
    tower, layer, site, module, param = key.split(".")
    layers, sites = layout(family)[tower]
    if kind == "adapters" and f"{module}.{param}" == SCALE_KEY:
        return f"{layers}.{layer}.{sites[site]}.adapters.{name}.{SCALING_PARAM}"
    if kind == "adapters":
        theirs = {v: k for k, v in ADAPTER_PARAMS.items()}[module]
        return f"{layers}.{layer}.{sites[site]}.adapters.{name}.{theirs}.{param}"
    return f"{layers}.{layer}.{sites[site]}.adapter_fusion_layer.{name}.{module}.{param}"


def _pattern(family: str, kind: str) -> list[tuple[re.Pattern, str, dict[str, str]]]:
    patterns = []
    for tower, (layers, sites) in layout(family).items():
        for site, path in sites.items():
            container = "adapters" if kind == "adapters" else "adapter_fusion_layer"
            params = ADAPTER_PARAMS if kind == "adapters" else FUSION_PARAMS
            scaling = rf"|(?P<scaling>{SCALING_PARAM})" if kind == "adapters" else ""
            regex = (
                rf"^(?:[A-Za-z_]\w*\.)?{re.escape(layers)}\.(?P<layer>\d+)\.{re.escape(path)}\.{container}\."
                rf"(?P<name>[^.]+(?:,[^.]+)*)\.(?:(?P<module>{'|'.join(re.escape(p) for p in params)})\.(?P<param>weight|bias){scaling})$"
            )
            patterns.append((re.compile(regex), f"{tower}.{{layer}}.{site}", params))
    return patterns


def renamed(key: str) -> str:
    """A key with adapter-transformers' old module names replaced as AdapterHub does on load."""
    for old, new in LEGACY_NAMES.items():
        key = key.replace(old, new)
    return key


def from_adapterhub(family: str, keys: list[str], kind: str = "adapters") -> tuple[dict[str, str], list[str]]:
    """AdapterHub keys -> (their key -> our canonical key, keys that fit no known place)."""
    mapping, unknown = {}, []
    patterns = _pattern(family, kind)
    for original in keys:
        key = renamed(original)
        for regex, prefix, params in patterns:
            match = regex.match(key)
            if match:
                where = prefix.format(layer=match["layer"])
                if match.groupdict().get("scaling"):
                    mapping[original] = f"{where}.{SCALE_KEY}"
                else:
                    mapping[original] = f"{where}.{params[match['module']]}.{match['param']}"
                break
        else:
            unknown.append(original)
    return mapping, unknown
