"""Family recognition: every family entry's tiny example, task-head models through their base model, subclasses,
model types, and towers that only partly fit."""

import logging

import pytest
import torch

import mm_adapters as mma
from mm_adapters.specs import tower_blocks
from mm_adapters.state import iter_sites

from tiny_backbones import ALL_FACTORIES, FACTORIES

NEW_EXAMPLES = sorted(set(ALL_FACTORIES) - set(FACTORIES))


def _nonzero_up_projections(model):
    for site in iter_sites(model):
        for adapter in site.adapters.values():
            torch.nn.init.normal_(adapter.up.weight, std=0.1)
            torch.nn.init.constant_(adapter.down.bias, 0.1)  # tiny random models: keep the ReLU alive


@pytest.mark.parametrize("name", NEW_EXAMPLES)
def test_family_example_is_adapted_in_every_layer_and_trains(name):
    tiny = ALL_FACTORIES[name](0)
    batch = tiny.make_batch(0)
    with torch.no_grad():
        frozen = tiny.run(tiny.model, batch)
    mma.add_adapter(tiny.model, "a", mma.AdapterConfig.houlsby())
    with torch.no_grad():
        torch.testing.assert_close(tiny.run(tiny.model, batch), frozen, atol=1e-5, rtol=0)
    spec = mma.detect_spec(tiny.model)
    sites = {(s.tower, s.layer_index, s.site) for s in iter_sites(tiny.model)}
    for tower_name, tower in spec.towers.items():
        count = len(tower_blocks(tiny.model, tower))
        assert {(tower_name, i, kind) for i in range(count) for kind in ("attn", "ffn")} <= sites
    _nonzero_up_projections(tiny.model)
    output = tiny.run(tiny.model, batch).float()
    (output * torch.randn(output.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    for pname, parameter in tiny.model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, pname
        else:
            assert parameter.grad is None, pname


@pytest.mark.parametrize(
    "head_class, base_attr",
    [
        ("ViTForImageClassification", "vit"),
        ("BertForSequenceClassification", "bert"),
        ("Wav2Vec2ForCTC", "wav2vec2"),
    ],
)
def test_task_head_models_are_adapted_through_their_base_model(head_class, base_attr):
    import transformers

    family = {"vit": "hf_vit", "bert": "hf_bert", "wav2vec2": "hf_wav2vec2"}[base_attr]
    config = FACTORIES[family](0).model.config
    model = getattr(transformers, head_class)(config).eval()
    spec = mma.detect_spec(model)
    assert spec.family == family
    assert all(tower.layers.startswith(f"{base_attr}.") for tower in spec.towers.values())
    mma.add_adapter(model, "task")
    head_parameters = [p for n, p in model.named_parameters() if not n.startswith(f"{base_attr}.")]
    assert head_parameters and not any(p.requires_grad for p in head_parameters)  # the head is left alone
    assert all(s.tower in spec.towers for s in iter_sites(getattr(model, base_attr)))


def test_subclasses_and_model_types_are_recognised():
    from transformers import BertModel

    class MyBert(BertModel):
        pass

    tiny = FACTORIES["hf_bert"](0)
    assert mma.detect_spec(MyBert(tiny.model.config)).family == "hf_bert"
    deberta = ALL_FACTORIES["hf_deberta_v2"](0).model  # matched by config.model_type
    assert type(deberta).__name__ not in mma.detect_spec(deberta).class_names
    assert mma.detect_spec(deberta).family == "hf_bert"


def test_a_tower_no_family_covers_is_left_out_with_a_note(caplog):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    model = CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(layers=(1, 1, 1, 1), width=16, image_size=32),  # a ModifiedResNet tower
        text_cfg=CLIPTextCfg(context_length=8, vocab_size=100, width=32, heads=4, layers=2),
    ).eval()
    with caplog.at_level(logging.WARNING, logger="mm_adapters"):
        spec = mma.detect_spec(model)
    assert list(spec.towers) == ["text"]
    assert "'vision' is not adapted" in caplog.text and "ModifiedResNet" in caplog.text
    mma.add_adapter(model, "a")
    assert {s.tower for s in iter_sites(model)} == {"text"}


def test_a_model_no_family_covers_gets_an_error_that_says_how_to_pass_a_spec():
    with pytest.raises(ValueError, match="spec="):
        mma.detect_spec(torch.nn.Sequential(torch.nn.Linear(4, 4)), auto=False)
