"""The Hugging Face population: every model type in the installed transformers' auto config mapping that has a base
model class (``AutoModel``), as its base model plus one task head where one exists; composite configs are built with
their default sub-configs. Built tiny (:mod:`.hf_shrink`) with random weights, offline; a model over
:data:`PARAMETER_LIMIT` after shrinking, or one no example input runs, is reported as not built, with the reason."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from torch import nn

from .hf_inputs import all_floats, example_batch
from .hf_shrink import generic_shrunk_config
from .shrink import shrunk_hf_config
from .weights import as_trained

PARAMETER_LIMIT = 40_000_000
HEAD_ORDER = (
    "SEQUENCE_CLASSIFICATION", "IMAGE_CLASSIFICATION", "CTC", "AUDIO_CLASSIFICATION", "CAUSAL_LM",
    "SEQ_TO_SEQ_CAUSAL_LM", "SPEECH_SEQ_2_SEQ", "IMAGE_TEXT_TO_TEXT", "VIDEO_CLASSIFICATION", "MASKED_LM",
    "ZERO_SHOT_IMAGE_CLASSIFICATION", "TOKEN_CLASSIFICATION", "DEPTH_ESTIMATION", "SEMANTIC_SEGMENTATION",
)  # fmt: skip
"""Task heads in the order the sweep picks one per type (then any other head the type has)."""
_SHORT = {"CTC": "CTC", "LM": "LM", "SEQ": "Seq", "TO": "To"}


def head_name(mapping: str) -> str:
    """``SEQUENCE_CLASSIFICATION`` -> ``SequenceClassification`` (the suffix of the ``AutoModelFor`` class)."""
    return "".join(_SHORT.get(word, word.capitalize()) for word in mapping.split("_"))


@functools.cache
def _head_mappings() -> dict[str, dict]:
    from transformers.models.auto import modeling_auto

    found = {}
    for attribute in sorted(dir(modeling_auto)):
        if attribute.startswith("MODEL_FOR_") and attribute.endswith("_MAPPING_NAMES"):
            found[attribute.removeprefix("MODEL_FOR_").removesuffix("_MAPPING_NAMES")] = getattr(
                modeling_auto, attribute
            )
    ordered = [key for key in HEAD_ORDER if key in found] + [k for k in found if k not in HEAD_ORDER]
    return {head_name(key): found[key] for key in ordered if key not in ("BACKBONE", "PRETRAINING")}


def population() -> tuple[list[str], list[str]]:
    """(model types with a base model class, config types without one), in the auto mapping's order."""
    from transformers.models.auto import configuration_auto, modeling_auto

    types = list(configuration_auto.CONFIG_MAPPING_NAMES)
    with_base = [t for t in types if t in modeling_auto.MODEL_MAPPING_NAMES]
    return with_base, [t for t in types if t not in modeling_auto.MODEL_MAPPING_NAMES]


def head_of(model_type: str) -> str | None:
    """The one task head the sweep builds for ``model_type`` (None where it has none besides the base model)."""
    from transformers.models.auto import modeling_auto

    base = modeling_auto.MODEL_MAPPING_NAMES.get(model_type)
    for head, mapping in _head_mappings().items():
        names = mapping.get(model_type)
        if names and names != base:
            return head
    return None


def hf_names(types: tuple[str, ...] | None = None) -> Iterator[str]:
    """Sweep names: ``model_type`` and ``model_type:Head``."""
    for model_type in types if types is not None else population()[0]:
        yield model_type
        head = head_of(model_type)
        if head:
            yield f"{model_type}:{head}"


def _model_class(model_type: str, head: str):
    import transformers
    from transformers.models.auto import modeling_auto

    mapping = _head_mappings()[head] if head else modeling_auto.MODEL_MAPPING_NAMES
    class_name = mapping[model_type]
    if isinstance(class_name, (tuple, list)):  # DeiT: the plain head, not the one with a distillation token
        class_name = class_name[0]
    return getattr(transformers, class_name)


def _parameter_count(model_class, config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in model_class._from_config(config).parameters())


def build_hf(model_type: str, head: str = "") -> nn.Module:
    """The model, shrunk by the generic rules, else by the named ones; raises naming why each failed."""
    from transformers import AutoConfig

    model_class = _model_class(model_type, head)
    default = AutoConfig.for_model(model_type)
    reasons = []
    for rules, shrink in (("generic", generic_shrunk_config), ("named", shrunk_hf_config)):
        try:
            config = shrink(default)
            if head == "CTC" and getattr(config, "vocab_size", None) is None:
                config.vocab_size = 32  # wav2vec2-conformer's config has no CTC vocabulary of its own
            if head == "SequenceClassification" and getattr(config, "pad_token_id", 0) is None:
                config.pad_token_id = 0  # GPT-2-like classifiers find the last token by the padding id
            count = _parameter_count(model_class, config)
            if count > PARAMETER_LIMIT:
                raise ValueError(f"{count:,} parameters after shrinking (limit {PARAMETER_LIMIT:,})")
            torch.manual_seed(0)
            model = as_trained(model_class._from_config(config).eval().requires_grad_(False))
            if hasattr(model, "set_default_language"):  # X-MOD: one language adapter per batch
                model.set_default_language(next(iter(config.languages)))
            model._sweep_batch = example_batch(model)
            return model
        except Exception as error:  # noqa: BLE001  (try the next rules, then report both)
            reasons.append(
                f"{rules} sizes: {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
            )
    raise RuntimeError("; ".join(reasons))


def run_hf(model: nn.Module) -> torch.Tensor:
    return all_floats(model(**model._sweep_batch))
