"""Cross-modal CLIP adapters: a middle projection shared by both towers, feature-level adapters, save/load, counts."""

import json

import pytest
import torch

import mm_adapters as mma
from mm_adapters import AdapterConfig, FeatureAdapter
from mm_adapters.composition import SharedBottleneckAdapter
from mm_adapters.state import get_state, iter_sites

from tiny_backbones import hf_bert, open_clip_model

CONFIG = AdapterConfig.houlsby(reduction_factor=4)


def hf_clip_two_widths(seed: int = 0, text_layers: int = 2):
    """A tiny Hugging Face CLIP whose text tower (48) is wider than its vision tower (32)."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=100,
            max_position_embeddings=16,
            hidden_size=48,
            num_hidden_layers=text_layers,
            num_attention_heads=4,
            intermediate_size=64,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        ),
        projection_dim=16,
    )
    model = CLIPModel(config).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    batch = {
        "pixel_values": torch.randn(2, 3, 32, 32, generator=generator),
        "input_ids": torch.randint(0, 100, (2, 8), generator=generator),
    }
    return model, batch


def _perturb(model):
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.3)


def _embeddings(model, batch):
    with torch.no_grad():
        out = model(**batch)
    return out.image_embeds, out.text_embeds


def _shared_pairs(model, name):
    adapters = {
        (s.tower, s.layer_index, s.site): s.adapters[name] for s in iter_sites(model) if name in s.adapters
    }
    return [
        (adapters[("vision", layer, site)], adapters[("text", layer, site)])
        for layer in (0, 1)
        for site in CONFIG.sites
    ]


def test_towers_of_different_widths_share_a_middle_projection():
    model, batch = hf_clip_two_widths()
    base = _embeddings(model, batch)
    mma.add_cross_modal_adapter(model, "clip", CONFIG, share="middle")
    for vision, text in _shared_pairs(model, "clip"):
        assert isinstance(vision, SharedBottleneckAdapter) and vision.middle is text.middle
        assert (vision.down.in_features, text.down.in_features) == (32, 48)
        assert vision.down.out_features == text.down.out_features == 8  # the narrower tower's 32 / 4
    for got, expected in zip(_embeddings(model, batch), base, strict=True):
        torch.testing.assert_close(got, expected)  # identity at initialisation
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".adapters.clip." in n for n in trainable)


def test_image_embeddings_do_not_depend_on_the_text():
    model, batch = hf_clip_two_widths()
    mma.add_cross_modal_adapter(model, "clip", CONFIG)
    _perturb(model)
    other_text = dict(
        batch, input_ids=torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(9))
    )
    image, text = _embeddings(model, batch)
    other_image, other_text_embeds = _embeddings(model, other_text)
    torch.testing.assert_close(other_image, image, rtol=0, atol=0)
    assert not torch.allclose(other_text_embeds, text)

    pooled = model.vision_model(pixel_values=batch["pixel_values"]).pooler_output
    (
        pooled * torch.linspace(-1, 1, pooled.shape[-1])
    ).sum().backward()  # a plain sum is constant after LayerNorm
    vision, text_adapter = _shared_pairs(model, "clip")[0]
    assert vision.middle.weight.grad.abs().sum() > 0  # the shared part learns from both modalities
    assert text_adapter.down.weight.grad is None and text_adapter.up.weight.grad is None


def test_open_clip_encoders_stay_independent():
    tiny = open_clip_model()
    tiny.model.requires_grad_(False)
    mma.add_cross_modal_adapter(tiny.model, "clip", AdapterConfig.parallel(), share="middle")
    _perturb(tiny.model)
    batch = tiny.make_batch(0)
    with torch.no_grad():
        image = tiny.model.encode_image(batch["pixel_values"])
        tiny.model.encode_text(torch.randint(1, 100, (5, 8)))
        again = tiny.model.encode_image(batch["pixel_values"])
        image_with_text = tiny.model(batch["pixel_values"], batch["text"])[0]
    torch.testing.assert_close(again, image, rtol=0, atol=0)
    torch.testing.assert_close(image_with_text, torch.nn.functional.normalize(image, dim=-1))


def test_shared_adapter_round_trips_through_save_adapter(tmp_path):
    model, batch = hf_clip_two_widths()
    mma.add_cross_modal_adapter(model, "clip", CONFIG)
    _perturb(model)
    expected = _embeddings(model, batch)
    mma.save_adapter(model, "clip", tmp_path / "clip")
    assert json.loads((tmp_path / "clip" / "adapter_config.json").read_text())["share"] == "middle"

    fresh, _ = hf_clip_two_widths()
    torch.manual_seed(77)
    assert mma.load_adapter(fresh, tmp_path / "clip") == "clip"
    assert get_state(fresh).shared == {"clip": "middle"}
    for vision, text in _shared_pairs(fresh, "clip"):
        assert vision.middle is text.middle  # sharing survives the round trip
    for got, want in zip(_embeddings(fresh, batch), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    mma.delete_adapter(fresh, "clip")
    assert get_state(fresh).shared == {}


def test_parameter_counts_match_the_built_variants():
    model, _ = hf_clip_two_widths()
    counts = mma.cross_modal_parameter_counts(model, CONFIG)
    assert counts["feature"] == 2 * sum(p.numel() for p in FeatureAdapter(16).parameters())

    mma.add_cross_modal_adapter(model, "separate", CONFIG, share="none")
    assert get_state(model).shared == {}
    assert mma.count_parameters(model).trainable == counts["separate"]
    mma.add_cross_modal_adapter(model, "shared", CONFIG, share="middle")
    assert mma.count_parameters(model).trainable == counts["shared_middle"]
    # 2 layers x 2 sites of: vision 2*32*8+8+32, text 2*48*12+12+48 (separate) or 8 wide, plus 8*8+8 shared
    assert counts["separate"] == 4 * (552 + 1212) and counts["shared_middle"] == 4 * (552 + 824 + 72)


def test_towers_must_pair_up():
    model, _ = hf_clip_two_widths(text_layers=3)
    with pytest.raises(ValueError, match="last:K"):
        mma.add_cross_modal_adapter(model, "clip", CONFIG)
    mma.add_cross_modal_adapter(model, "clip", AdapterConfig.houlsby(reduction_factor=4, layers="last:2"))
    assert mma.adapted_layers(model) == {"vision": [0, 1], "text": [1, 2]}
    with pytest.raises(ValueError, match="two towers"):
        mma.add_cross_modal_adapter(hf_bert().model, "text", CONFIG)
    with pytest.raises(ValueError, match="share must be one of"):
        mma.add_cross_modal_adapter(model, "other", CONFIG, share="up")


def test_feature_adapter_is_a_residual_mlp():
    adapter = FeatureAdapter(16, reduction_factor=4, alpha=0.5)
    x = torch.randn(3, 16)
    torch.testing.assert_close(adapter(x), x)  # identity at initialisation
    torch.nn.init.normal_(adapter.up.weight)
    expected = x + 0.5 * adapter.up(torch.relu(adapter.down(x)))
    torch.testing.assert_close(adapter(x), expected)
    assert adapter.down.out_features == 4
    with pytest.raises(ValueError, match="activation"):
        FeatureAdapter(16, activation="softmax")
