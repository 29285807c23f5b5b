"""Backbone wrappers: task-facing outputs per family, loading saved checkpoints back, demo backbones, errors."""

import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import mm_adapters as mma
from mm_adapters.backbones import (
    BACKBONE_WRAPPERS,
    DEMO_BACKBONES,
    BackboneNotFoundError,
    backbone_available,
    demo_backbone,
    load_backbone,
    wrap_backbone,
)
from mm_adapters.backbones.pooling import masked_mean
from mm_adapters.specs import FAMILIES

from tiny_backbones import FACTORIES, HIDDEN

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "the",
    "mat",
    "red",
    "car",
]


def _tokenizer(folder: Path):
    from transformers import BertTokenizer

    (folder / "vocab.txt").write_text("\n".join(WORDS))
    return BertTokenizer(str(folder / "vocab.txt"))


def _same_outputs(first, second, batch, method="forward"):
    first.eval(), second.eval()
    with torch.no_grad():
        a, b = getattr(first, method)(batch), getattr(second, method)(batch)
    assert torch.equal(a, b)


def test_every_family_entry_names_a_registered_wrapper_and_its_demos_exist():
    for family in FAMILIES.values():
        assert family.wrapper is None or family.wrapper in BACKBONE_WRAPPERS, family.name
        assert set(family.spec.towers), family.name
    assert {demo.name for family in FAMILIES.values() for demo in family.demos} == set(DEMO_BACKBONES)


def test_task_head_model_is_wrapped_through_its_base_model():
    from transformers import ViTForImageClassification

    base = FACTORIES["hf_vit"](0).model
    head = ViTForImageClassification(base.config).eval()
    backbone = wrap_backbone(head)
    assert backbone.model is head.vit
    assert backbone(tiny_images()).shape == (2, backbone.feature_dim)


def tiny_images():
    return {"pixel_values": torch.randn(2, 3, 32, 32)}


@pytest.mark.parametrize("family", sorted(FACTORIES))
def test_pooled_features_have_feature_dim(family):
    tiny = FACTORIES[family](0)
    backbone = wrap_backbone(tiny.model)
    assert backbone.model is tiny.model
    batch = tiny.make_batch(0)
    if "text" in batch:  # open_clip's tiny batch names its ids "text"
        batch["input_ids"] = batch.pop("text")
    features = backbone(batch)
    assert features.shape == (2, backbone.feature_dim)
    assert torch.isfinite(features).all()


def test_text_features_are_mean_pooled_over_real_tokens():
    backbone = wrap_backbone(FACTORIES["hf_bert"](0).model).eval()
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        hidden = backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
        features = backbone({"input_ids": ids, "attention_mask": mask})
    torch.testing.assert_close(features[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(features[1], hidden[1].mean(0))


def test_audio_frames_count_only_unpadded_audio():
    backbone = wrap_backbone(FACTORIES["hf_wav2vec2"](0).model).eval()
    mask = torch.ones(2, 1600, dtype=torch.long)
    mask[1, 800:] = 0
    with torch.no_grad():
        hidden, lengths = backbone.frames({"input_values": torch.randn(2, 1600), "attention_mask": mask})
        pooled = backbone({"input_values": torch.randn(2, 1600), "attention_mask": mask})
    assert hidden.shape[:2] == (2, lengths[0]) and lengths[1] < lengths[0]
    expected = backbone.model._get_feat_extract_output_lengths(torch.tensor([1600, 800]))
    assert lengths.tolist() == expected.tolist()
    assert pooled.shape == (2, HIDDEN)


@pytest.mark.parametrize("family", ["hf_clip", "open_clip"])
def test_clip_embeddings_are_normalised_and_match_the_model(family):
    tiny = FACTORIES[family](0)
    backbone = wrap_backbone(tiny.model).eval()
    batch = tiny.make_batch(0)
    ids = batch.get("input_ids", batch.get("text"))
    with torch.no_grad():
        images, texts = backbone.encode_image(batch["pixel_values"]), backbone.encode_text({"input_ids": ids})
        if family == "open_clip":
            reference = tiny.model.encode_image(batch["pixel_values"], normalize=True)
        else:
            reference = F.normalize(
                tiny.model(input_ids=ids, pixel_values=batch["pixel_values"]).image_embeds, dim=-1
            )
    torch.testing.assert_close(images, reference)
    torch.testing.assert_close(texts.norm(dim=-1), torch.ones(2))
    assert 1.0 < float(backbone.logit_scale) <= 100.0


def test_unsupported_task_says_what_is_needed():
    backbone = wrap_backbone(FACTORIES["hf_vit"](0).model)
    with pytest.raises(NotImplementedError, match="image-text model"):
        backbone.encode_text({})
    with pytest.raises(NotImplementedError, match="audio model"):
        backbone.frames({})


# -- loading saved checkpoints through the real loaders ---------------------------------------------------------------
def test_hf_vit_folder_round_trip_reads_its_image_processor(tmp_path):
    from transformers import ViTImageProcessor

    tiny = FACTORIES["hf_vit"](0)
    tiny.model.save_pretrained(tmp_path)
    ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6]
    ).save_pretrained(tmp_path)
    loaded = load_backbone(tmp_path)
    assert type(loaded).__name__ == "HFViTBackbone"
    assert (loaded.image_size, loaded.image_mean, loaded.image_std) == (32, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    _same_outputs(wrap_backbone(tiny.model), loaded, tiny.make_batch(1))


def test_hf_bert_folder_round_trip_brings_its_tokenizer(tmp_path):
    tiny = FACTORIES["hf_bert"](0)
    tiny.model.save_pretrained(tmp_path)
    _tokenizer(tmp_path).save_pretrained(tmp_path)
    loaded = load_backbone(tmp_path, max_length=16)
    assert loaded.max_length == 16
    batch = loaded.tokenizer(["the cat sat on the mat", "a dog"], padding=True, return_tensors="pt")
    assert batch["input_ids"][0, 0] == WORDS.index("[CLS]")
    _same_outputs(wrap_backbone(tiny.model), loaded, dict(batch))


def test_text_folder_without_tokenizer_is_an_error(tmp_path):
    FACTORIES["hf_bert"](0).model.save_pretrained(tmp_path)
    with pytest.raises(BackboneNotFoundError, match="no tokenizer"):
        load_backbone(tmp_path)


def test_hf_wav2vec2_folder_round_trip_reads_its_sample_rate(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor

    tiny = FACTORIES["hf_wav2vec2"](0)
    tiny.model.save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=8000).save_pretrained(tmp_path)
    loaded = load_backbone(tmp_path)
    assert loaded.sample_rate == 8000
    _same_outputs(wrap_backbone(tiny.model), loaded, tiny.make_batch(1))


def test_hf_clip_folder_round_trip(tmp_path):
    tiny = FACTORIES["hf_clip"](0)
    tiny.model.save_pretrained(tmp_path)
    _tokenizer(tmp_path).save_pretrained(tmp_path)
    loaded = load_backbone(tmp_path)
    assert loaded.image_size == 32 and loaded.max_length == 16
    _same_outputs(wrap_backbone(tiny.model), loaded, tiny.make_batch(1)["pixel_values"], "encode_image")


def test_timm_folder_round_trip(tmp_path):
    import timm
    from timm.models import save_for_hf

    args = dict(img_size=32, patch_size=8, embed_dim=HIDDEN, depth=2, num_heads=4)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **args)
    save_for_hf(model, tmp_path, model_args=args, safe_serialization=True)
    loaded = load_backbone(tmp_path)
    assert type(loaded).__name__ == "TimmViTBackbone" and loaded.image_size == 32
    _same_outputs(wrap_backbone(model), loaded, {"pixel_values": torch.randn(2, 3, 32, 32)})


def test_open_clip_folder_round_trip(tmp_path):
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    config = {
        "embed_dim": 16,
        "vision_cfg": {"layers": 2, "width": HIDDEN, "head_width": 8, "patch_size": 8, "image_size": 32},
        "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": HIDDEN, "heads": 4, "layers": 2},
    }
    model = CLIP(**config).eval()
    preprocess = {
        "mean": [0.1, 0.2, 0.3],
        "std": [0.4, 0.5, 0.6],
    }  # the format open_clip's save_for_hf writes
    (tmp_path / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": config, "preprocess_cfg": preprocess})
    )
    save_file(model.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    loaded = load_backbone(tmp_path)
    assert type(loaded).__name__ == "OpenCLIPBackbone"
    assert (loaded.image_size, loaded.image_mean, loaded.max_length) == (32, (0.1, 0.2, 0.3), 8)
    ids = loaded.tokenizer(["a photo of a cat"])["input_ids"]
    assert ids.shape == (1, 8)
    _same_outputs(wrap_backbone(model), loaded, {"input_ids": ids}, "encode_text")


# -- names that point at nothing --------------------------------------------------------------------------------------
def test_uncached_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(BackboneNotFoundError, match="HF_HUB_OFFLINE=1") as error:
        load_backbone("someone/not-a-cached-model")
    assert time.perf_counter() - start < 5
    assert "demo-vit" in str(error.value)
    assert not backbone_available("someone/not-a-cached-model")


@pytest.mark.parametrize(
    "name",
    [
        "vit_base_patch16_224.augreg2_in21k_ft_in1k",
        "ViT-B-32:laion2b_s34b_b79k",
        "google/vit-base-patch16-224",
    ],
)
def test_published_backbones_fail_fast_offline_when_not_cached(monkeypatch, name):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneNotFoundError, match="not in the local cache"):
        load_backbone(name)


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(BackboneNotFoundError, match="does not exist"):
        load_backbone(str(tmp_path / "nothing-here") if str(tmp_path).startswith("/") else "./nothing-here")
    with pytest.raises(BackboneNotFoundError, match="no config.json"):
        load_backbone(tmp_path)


# -- demo backbones and the packaged MiniLM ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DEMO_BACKBONES))
def test_demo_backbones_are_seeded_and_adaptable(name):
    torch.manual_seed(123)
    before = torch.rand(1)
    first, again, other = (
        demo_backbone(name, seed=0),
        demo_backbone(name, seed=0),
        demo_backbone(name, seed=1),
    )
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), before)  # the global random state is left alone
    weights = [dict(b.model.state_dict()) for b in (first, again, other)]
    key = next(k for k, v in weights[0].items() if v.is_floating_point() and v.std() > 0)
    assert torch.equal(weights[0][key], weights[1][key]) and not torch.equal(weights[0][key], weights[2][key])
    assert first.name == name
    mma.add_adapter(first.model, "task")
    assert mma.count_parameters(first.model).trainable > 0


def test_minilm_matches_sentence_transformers():
    """Same mean pooling as the packaged sentence-transformers pipeline (which L2-normalises at the end)."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    backbone = load_backbone("minilm").eval()
    sentences = ["A gripping, beautifully shot film.", "Dull and far too long."]
    batch = backbone.tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        ours = F.normalize(backbone(dict(batch)), dim=-1)
    reference = sentence_transformers.SentenceTransformer(str(backbone_path()), device="cpu")
    theirs = reference.encode(sentences, convert_to_tensor=True)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def backbone_path() -> Path:
    from mm_adapters.backbones import minilm_path

    path = minilm_path()
    assert json.loads((path / "config.json").read_text())["hidden_size"] == 384
    return path


def test_masked_mean_ignores_padding():
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(hidden, torch.tensor([[1, 1, 0]])).item() == 2.0
