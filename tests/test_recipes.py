"""Every recipe end to end on a tiny setting (two steps, bundled data), its outputs, resuming and preset choice."""

import importlib
import json
from pathlib import Path

import pytest
import torch

TINY_CONFIG = "preset: demo\nmax_steps: 2\nbatch_size: 4\nlimit_val_batches: 2\n"
CLASSIFICATION = {"vit_cifar", "wav2vec_accent", "bert_text"}
EXTRA = {"bert_text": ["--backbone", "demo-bert"]}  # the real MiniLM is tested in test_backbones


def run(recipe: str, output: Path, *args: str) -> dict:
    """The recipe from a ``--config`` file holding the tiny settings, then ``args`` as command-line overrides."""
    output.mkdir(parents=True, exist_ok=True)
    config = output.parent / f"{output.name}.yaml"
    config.write_text(TINY_CONFIG + f"output_dir: {output}\n")
    return importlib.import_module(f"recipes.{recipe}").main(
        ["--config", str(config), *EXTRA.get(recipe, []), *args]
    )


@pytest.mark.parametrize(
    "recipe", ["vit_cifar", "clip_retrieval", "wav2vec_accent", "wav2vec_asr", "bert_text"]
)
def test_recipe_runs_end_to_end_and_writes_its_outputs(recipe, tmp_path):
    report = run(recipe, tmp_path)
    assert report == json.loads((tmp_path / "metrics.json").read_text())
    assert report["preset"] == "demo" and report["steps"] == 2
    assert 0 < report["trainable_params"] < report["total_params"]
    assert report["metrics"] and all(isinstance(v, float) for v in report["metrics"].values())
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert "train_loss" in (tmp_path / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert (tmp_path / "curves.png").stat().st_size > 1000
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(key.startswith("head.") or ".adapters." in key for key in checkpoint["state_dict"])
    if recipe in CLASSIFICATION:
        assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000
    if recipe == "clip_retrieval":
        assert set(report["zero_shot_metrics"]) == set(report["metrics"])
        assert set(report["seen_images_before"]) == set(report["seen_images_after"])
    if recipe == "wav2vec_asr":
        assert report["examples"] and (tmp_path / "vocabulary.json").is_file()


def test_resume_continues_from_the_trainable_checkpoint(tmp_path):
    first = run("vit_cifar", tmp_path / "first")
    resumed = run("vit_cifar", tmp_path / "second", "--max-steps", "3", "--resume", first["checkpoint"])
    assert resumed["steps"] == 3 and resumed["resumed_from"] == first["checkpoint"]


def test_linear_probe_trains_the_head_only(tmp_path):
    report = run("bert_text", tmp_path, "--linear-probe")
    assert report["adapter"] is None
    assert report["trainable_params"] == 128 * 2 + 2  # demo-bert features -> two classes
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [
        "README.md",
        "head.safetensors",
        "labels.json",
        "task.json",
    ]


def test_placement_and_layers_options_reach_the_adapter(tmp_path):
    run("wav2vec_accent", tmp_path, "--placement", "houlsby", "--reduction-factor", "8", "--layers", "last:2")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["config"]
    assert (
        config["sites"] == ["attn", "ffn"]
        and config["reduction_factor"] == 8
        and config["layers"] == "last:2"
    )


def test_full_preset_fails_fast_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit, match="HF_HUB_OFFLINE=1"):
        importlib.import_module("recipes.vit_cifar").main(["--preset", "full", "--output-dir", str(tmp_path)])


def test_auto_preset_falls_back_to_demo_with_a_banner(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report = importlib.import_module("recipes.wav2vec_accent").main(
        ["--preset", "auto", "--max-steps", "1", "--limit-val-batches", "1", "--output-dir", str(tmp_path)]
    )
    assert report["preset"] == "demo" and report["backbone"] == "demo-wav2vec2"
    assert "Running the DEMO preset instead" in capsys.readouterr().out


def test_backbone_that_names_nothing_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="not a demo backbone"):
        run("vit_cifar", tmp_path, "--backbone", "no-such-backbone")


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        importlib.import_module("recipes.clip_retrieval").main(["--help"])
    text = capsys.readouterr().out
    for option in ("--preset", "--backbone", "--data", "--placement", "--reduction-factor", "--layers", "--max-epochs",
                   "--max-steps", "--batch-size", "--lr", "--output-dir", "--seed", "--resume"):  # fmt: skip
        assert option in text


def test_run_demos_prints_one_summary_table(tmp_path, capsys):
    importlib.import_module("recipes.run_demos").main(
        [
            "--recipes",
            "wav2vec_accent",
            "--output-dir",
            str(tmp_path),
            "--max-steps",
            "1",
            "--limit-val-batches",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert "accent classification" in out and "trainable %" in out and "accuracy" in out
    assert (tmp_path / "summary.txt").is_file()


def test_a_strategy_this_machine_cannot_run_is_refused_before_loading(tmp_path, monkeypatch):
    import mm_adapters.runner.run as runner_run
    from mm_adapters.runner.devices import check_devices

    def must_not_load(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the strategy was checked")

    monkeypatch.setattr(runner_run, "load_backbone", must_not_load)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(SystemExit, match="On CPU use --strategy ddp"):
        run("vit_cifar", tmp_path, "--devices", "2", "--strategy", "fsdp")
    with pytest.raises(ValueError, match="this machine has 1 GPU. Pass --devices 1"):
        check_devices("ddp", 4, accelerator_count=1)
    with pytest.raises(ValueError, match="at least 1"):
        check_devices("auto", 0, accelerator_count=0)
    check_devices("ddp", 2, accelerator_count=0)  # DDP on CPU: two processes, fine
    check_devices("fsdp", "auto", accelerator_count=2)
