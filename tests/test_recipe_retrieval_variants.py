"""The retrieval recipe's adapter variants (separate, shared middle, CLIP-Adapter features) and their comparison."""

import importlib
import json

import lightning as L
import pytest
import torch

import mm_adapters as mma
from mm_adapters import runner
from mm_adapters.backbones import load_backbone
from mm_adapters.lightning import RetrievalModule, load_for_inference

TINY = ["--preset", "demo", "--max-steps", "1", "--batch-size", "16", "--limit-val-batches", "1"]
VARIANTS = ("separate", "shared", "feature")
COUNT_KEYS = {"separate": "separate", "shared": "shared_middle", "feature": "feature"}


def test_compare_variants_trains_each_variant_and_writes_one_table(tmp_path, capsys):
    recipe = importlib.import_module("recipes.clip_retrieval")
    summary = recipe.main([*TINY, "--output-dir", str(tmp_path), "--compare-variants"])
    assert summary == json.loads((tmp_path / "metrics.json").read_text())
    rows = {row["variant"]: row for row in summary["compare_variants"]}
    assert list(rows) == ["separate", "shared", "feature"]
    config = mma.AdapterConfig.preset(
        "pfeiffer", reduction_factor=4, layers="all"
    )  # the demo preset's adapter
    expected = mma.cross_modal_parameter_counts(load_backbone("demo-clip").model, config)
    for variant, row in rows.items():
        report = json.loads((tmp_path / variant / "metrics.json").read_text())
        assert report["variant"] == variant and report["steps"] == 1
        assert row["trainable_params"] == report["trainable_params"] == expected[COUNT_KEYS[variant]]
        assert all(
            0.0 <= row[key] <= 1.0 for key in ("i2t_R@1", "t2i_R@10", "val_mean_before", "val_mean_after")
        )
    assert rows["feature"]["trainable_params"] < rows["separate"]["trainable_params"]
    # the feature variant exports only its embedding adapters (as the head); the others an in-tower adapter
    assert sorted(p.name for p in (tmp_path / "feature" / "adapter").iterdir()) == [
        "README.md",
        "head.safetensors",
        "head_config.json",
        "task.json",
    ]
    shared_config = json.loads((tmp_path / "shared" / "adapter" / "adapter_config.json").read_text())
    assert shared_config.get("share") == "middle"
    assert summary["table"] in capsys.readouterr().out
    for (
        variant
    ) in VARIANTS:  # each export reloads into a fresh demo CLIP and reproduces its validation metrics
        report = json.loads((tmp_path / variant / "metrics.json").read_text())
        backbone = load_backbone("demo-clip")
        head = load_for_inference(backbone, tmp_path / variant / "adapter")
        assert (head is not None) == (variant == "feature")
        module = RetrievalModule(backbone, feature_adapters=None if head is None else dict(head))
        datamodule = recipe.load_data(runner.parse_config(recipe.Config, TINY), backbone)
        trainer = L.Trainer(logger=False, enable_progress_bar=False, limit_val_batches=1, accelerator="cpu")
        metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
        for key, value in report["metrics"].items():
            assert float(metrics[key]) == pytest.approx(value, abs=1e-5), (variant, key)


def _module(variant: str) -> RetrievalModule:
    """A demo CLIP with the variant's adapters, all made non-trivial (their up projections start at zero)."""
    torch.manual_seed(0)
    backbone = load_backbone("demo-clip")
    feature = None
    if variant == "shared":
        mma.add_cross_modal_adapter(backbone.model, "retrieval", mma.AdapterConfig.pfeiffer(), share="middle")
    else:
        backbone.model.requires_grad_(False)
        feature = {tower: mma.FeatureAdapter(128, reduction_factor=4) for tower in ("image", "text")}
    module = RetrievalModule(backbone, feature_adapters=feature).eval()
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.requires_grad and ".up." in f".{name}":
                parameter.normal_(std=0.5)
    return module


@pytest.mark.parametrize("variant", ["shared", "feature"])
def test_image_embeddings_do_not_depend_on_the_text_in_the_batch(variant):
    module = _module(variant)
    pixels = torch.randn(2, 3, 32, 32)
    batches = [{"pixel_values": pixels, "input_ids": torch.randint(1, 49408, (2, 24))} for _ in range(2)]
    with torch.no_grad():
        (images_a, texts_a), (images_b, texts_b) = module(batches[0]), module(batches[1])
        base = module.backbone.encode_image(pixels) if variant == "feature" else None
        if variant == "shared":
            mma.set_active_adapters(module.backbone.model, None)
            base = module.backbone.encode_image(pixels)
    assert not torch.allclose(texts_a, texts_b)  # the texts differ ...
    assert torch.equal(images_a, images_b)  # ... and the image embeddings do not move
    assert not torch.allclose(images_a, base, atol=1e-4)  # while the adapters do change them


def test_feature_adapters_need_an_image_and_a_text_module():
    backbone = load_backbone("demo-clip")
    with pytest.raises(ValueError, match="'image' and a 'text'"):
        RetrievalModule(backbone, feature_adapters={"image": mma.FeatureAdapter(128)})
