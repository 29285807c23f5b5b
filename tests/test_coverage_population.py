"""The sweep covers populations, not picks: every Hugging Face model type with a base model class (plus one task
head), every timm architecture module, every open_clip config; configs shrunk by the names their size fields use;
a model that cannot be built says why."""

import open_clip
import pytest
import timm
from transformers import AutoConfig
from transformers.models.auto import configuration_auto, modeling_auto

from mm_adapters.coverage import hf_population
from mm_adapters.coverage.candidates import (
    NAMES_PER_MODULE,
    open_clip_candidates,
    timm_candidates,
    timm_population,
)
from mm_adapters.coverage.hf_population import build_hf, head_of, hf_names, population
from mm_adapters.coverage.hf_shrink import generic_shrunk_config


def test_every_config_type_is_swept_or_listed_without_a_base_model():
    with_base, without = population()
    assert sorted(with_base + without) == sorted(configuration_auto.CONFIG_MAPPING_NAMES)
    assert len(with_base) == len(
        set(modeling_auto.MODEL_MAPPING_NAMES) & set(configuration_auto.CONFIG_MAPPING_NAMES)
    )
    assert len(with_base) > 500
    names = list(hf_names())
    assert {name.partition(":")[0] for name in names} == set(with_base)
    assert len(names) == len(with_base) + sum(head_of(t) is not None for t in with_base)


@pytest.mark.parametrize(
    "model_type, head",
    [("bert", "SequenceClassification"), ("vit", "ImageClassification"), ("wav2vec2", "CTC"), ("clip", None)],
)
def test_one_head_per_type_in_the_order_of_the_common_tasks(model_type, head):
    expected = head
    if model_type == "clip":  # CLIP has an image classifier head only through its vision tower
        expected = (
            "ImageClassification"
            if "clip" in modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
            else None
        )
    assert head_of(model_type) == expected


def test_every_timm_module_and_open_clip_config_is_swept():
    by_module = timm_population()
    assert sum(len(names) for names in by_module.values()) == len(timm.list_models())
    swept = [c for c in timm_candidates()]
    assert {c.group for c in swept} == set(by_module)
    for module, names in by_module.items():
        assert sum(c.group == module for c in swept) == min(NAMES_PER_MODULE, len(names))
    assert [c.name for c in open_clip_candidates()] == open_clip.list_models()


def test_generic_shrinking_keeps_the_structure_and_shrinks_sub_configs():
    mistral = generic_shrunk_config(AutoConfig.for_model("mistral"))
    assert (mistral.hidden_size, mistral.num_hidden_layers, mistral.num_attention_heads) == (64, 2, 4)
    assert (
        mistral.num_key_value_heads == 2 and mistral.intermediate_size == 128
    )  # grouped queries stay grouped
    clip = generic_shrunk_config(AutoConfig.for_model("clip"))
    assert clip.text_config.hidden_size == 64 and clip.vision_config.num_hidden_layers == 2
    assert clip.vision_config.image_size == 32 and clip.vision_config.patch_size == 8
    t5 = generic_shrunk_config(AutoConfig.for_model("t5"))
    assert (t5.d_model, t5.d_ff, t5.num_layers, t5.num_heads, t5.d_kv) == (64, 128, 2, 4, 16)
    assert t5.dropout_rate == 0.0


def test_a_model_that_cannot_be_built_says_why(monkeypatch):
    monkeypatch.setattr(hf_population, "PARAMETER_LIMIT", 1000)
    with pytest.raises(
        RuntimeError,
        match=r"generic sizes: ValueError: [\d,]+ parameters after shrinking \(limit 1,000\); named sizes",
    ):
        build_hf("bert")
    with pytest.raises(KeyError):
        build_hf("no-such-model-type")
