"""The AdapterFusion recipe end to end on a tiny setting: two task adapters, their fusion, the outputs."""

import importlib
import json
from pathlib import Path

import pytest
import torch

import mm_adapters
from mm_adapters import runner
from mm_adapters.backbones import load_backbone

TINY = ["--preset", "demo", "--backbone", "demo-bert", "--max-steps", "2", "--fusion-max-steps", "2",
        "--batch-size", "4", "--train-limit", "16", "--val-limit", "8", "--heatmap-sentences", "2"]  # fmt: skip


def run(output: Path, *args: str) -> dict:
    return importlib.import_module("recipes.fusion_multitask").main(
        [*TINY, "--output-dir", str(output), *args]
    )


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("fusion")
    return output, run(output)


def test_writes_the_comparison_table_adapters_fusion_and_heatmap(sst2_run):
    output, report = sst2_run
    assert report == json.loads((output / "metrics.json").read_text())
    assert report["preset"] == "demo" and report["target"] == "sst2"
    setups = [row["setup"] for row in report["comparison"]]
    assert setups == [
        "sst2 adapter + its head",
        "agnews adapter + its head",
        "agnews adapter + new sst2 head",
        "Fuse(sst2, agnews) + new sst2 head",
    ]
    for row in report["comparison"]:
        assert row["target_val_acc"] is None or 0.0 <= row["target_val_acc"] <= 1.0
    assert report["comparison"][0]["target_val_acc"] == report["stage1"]["sst2"]["metrics"]["val_acc"]
    assert report["comparison"][1]["target_val_acc"] is None  # a topic head cannot classify sentiment
    assert report["metrics"] == report["fusion"]["metrics"] and set(report["metrics"]) >= {
        "val_acc",
        "val_f1",
    }
    assert report["val_rows"] == {"sst2": 8, "agnews": 8} and report["train_rows"] == {
        "sst2": 16,
        "agnews": 16,
    }
    for stage in ("sst2", "agnews", "agnews_head_for_sst2", "fusion"):
        folder = output / "stages" / stage
        assert "train_loss" in (folder / "logs" / "metrics.csv").read_text().splitlines()[0]
        assert (folder / "curves.png").stat().st_size > 1000
        assert (folder / "checkpoints" / "last.ckpt").is_file()
    assert Path(report["fusion_weights_png"]) == output / "fusion_weights.png"
    assert (output / "fusion_weights.png").stat().st_size > 1000
    assert len(report["heatmap_sentences"]) == 2


def test_parameter_counts_follow_the_two_stages(sst2_run):
    _, report = sst2_run
    hidden, layers = 128, 2  # demo-bert
    stage1, baseline, fusion = report["stage1"], report["baseline"], report["fusion"]
    # Pfeiffer: one bottleneck (hidden / 16 = 8) after each FFN, plus the task's linear head
    adapter = layers * (hidden * 8 + 8 + 8 * hidden + hidden)
    assert stage1["sst2"]["trainable_params"] == adapter + hidden * 2 + 2
    assert stage1["agnews"]["trainable_params"] == adapter + hidden * 4 + 4
    assert baseline["trainable_params"] == hidden * 2 + 2
    # fusion: query, key (with bias) and value (no bias) per adapted site; the adapters stay frozen
    assert fusion["trainable_params"] == layers * (3 * hidden * hidden + 2 * hidden) + hidden * 2 + 2
    # stage 2 adds the fusion layers and swaps the topic head for a new sentiment head
    assert (
        fusion["total_params"]
        == stage1["agnews"]["total_params"] - (hidden * 4 + 4) + fusion["trainable_params"]
    )


def test_fusion_weights_are_a_distribution_over_both_adapters(sst2_run):
    _, report = sst2_run
    means = report["mean_fusion_weights"]
    assert sorted(means) == ["text.0.ffn", "text.1.ffn"]
    for weights in means.values():
        assert list(weights) == ["sst2", "agnews"]
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-3)


def test_saved_adapters_and_fusion_reload_and_reproduce_the_reported_validation(sst2_run):
    output, report = sst2_run
    recipe = importlib.import_module("recipes.fusion_multitask")
    settings = runner.parse_config(recipe.Config, TINY)
    backbone = load_backbone("demo-bert", max_length=settings.max_length)  # seeded: the run's base weights
    for task in ("sst2", "agnews"):
        mm_adapters.load_adapter(backbone.model, output / "adapters" / task, set_active=False)
    head = torch.nn.Linear(128, 2)
    name = mm_adapters.load_fusion(backbone.model, output / "fusion", head=head)
    assert mm_adapters.list_fusions(backbone.model)[name] == ("sst2", "agnews")
    data = recipe.load_task("sst2", settings, backbone)
    batch = data.collate([dict(data.val[i], index=i) for i in range(len(data.val))])
    backbone.eval()
    with torch.no_grad():
        logits = head(backbone(batch))
    loss = torch.nn.functional.cross_entropy(logits, batch["labels"]).item()
    accuracy = (logits.argmax(-1) == batch["labels"]).float().mean().item()
    assert loss == pytest.approx(report["metrics"]["val_loss"], abs=1e-4)
    assert accuracy == pytest.approx(report["metrics"]["val_acc"])


def test_target_agnews_fuses_for_topic_classification(tmp_path):
    report = run(tmp_path, "--target", "agnews", "--max-steps", "1", "--fusion-max-steps", "1")
    assert [row["setup"] for row in report["comparison"]][2:] == [
        "sst2 adapter + new agnews head",
        "Fuse(sst2, agnews) + new agnews head",
    ]
    assert report["comparison"][1]["target_val_acc"] == report["stage1"]["agnews"]["metrics"]["val_acc"]
    assert report["baseline"]["trainable_params"] == 128 * 4 + 4  # a four-class topic head


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        importlib.import_module("recipes.fusion_multitask").main(["--help"])
    text = capsys.readouterr().out
    for option in ("--preset", "--target", "--backbone", "--placement", "--reduction-factor", "--layers",
                   "--max-steps", "--max-epochs", "--fusion-max-steps", "--batch-size", "--lr", "--fusion-lr",
                   "--train-limit", "--val-limit", "--output-dir", "--seed"):  # fmt: skip
        assert option in text


def test_full_preset_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="HF_HUB_OFFLINE=1"):
        importlib.import_module("recipes.fusion_multitask").main(
            ["--preset", "full", "--output-dir", str(tmp_path)]
        )


def test_max_steps_on_the_command_line_caps_every_stage(tmp_path):
    """The demo preset sets fusion_max_steps 20; --max-steps 1 alone caps the fusion stage and the baseline too,
    while --fusion-max-steps given as well keeps its own value."""
    fusion_cap = TINY.index("--fusion-max-steps")
    without_fusion_cap = TINY[:fusion_cap] + TINY[fusion_cap + 2 :]
    module = importlib.import_module("recipes.fusion_multitask")
    report = module.main([*without_fusion_cap, "--max-steps", "1", "--output-dir", str(tmp_path / "capped")])
    steps = [r["steps"] for r in report["stage1"].values()] + [
        report["baseline"]["steps"],
        report["fusion"]["steps"],
    ]
    assert steps == [1, 1, 1, 1] and report["settings"]["fusion_max_steps"] == 1
    config = module.Config(max_steps=3, fusion_max_steps=20)
    assert module.cap_every_stage(config, {"max_steps", "fusion_max_steps"}).fusion_max_steps == 20
    assert module.cap_every_stage(config, {"batch_size"}).fusion_max_steps == 20  # the preset's own caps stay
