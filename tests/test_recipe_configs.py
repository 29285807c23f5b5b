"""Recipe configs as files: every preset YAML loads into its recipe's typed config, ``--config`` files and command-line
options override it in that order, ``--print-config`` round-trips, and bad keys or values are clear errors."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest
import yaml

from mm_adapters.runner import PRESET_NAMES, RecipeConfig, dump_config, parse_config

RECIPES = (
    "vit_cifar", "clip_retrieval", "wav2vec_accent", "wav2vec_asr", "bert_text", "fusion_multitask",
    "speech_digits", "whisper_asr",
)  # fmt: skip
CONFIGS = Path(__file__).resolve().parents[1] / "recipes" / "configs"


def config_class(recipe: str) -> type[RecipeConfig]:
    return importlib.import_module(f"recipes.{recipe}").Config


def test_every_recipe_has_exactly_a_demo_and_a_full_preset():
    assert sorted(p.name for p in CONFIGS.iterdir()) == sorted(RECIPES)
    for recipe in RECIPES:
        assert sorted(p.name for p in (CONFIGS / recipe).iterdir()) == [
            f"{name}.yaml" for name in PRESET_NAMES
        ]


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("recipe", RECIPES)
def test_preset_files_load_into_the_typed_config(recipe, preset):
    values = yaml.safe_load((CONFIGS / recipe / f"{preset}.yaml").read_text())
    cls = config_class(recipe)
    fields = {field.name for field in dataclasses.fields(cls)}
    assert set(values) <= fields - {"preset"}, f"unknown keys {set(values) - fields}"
    config = parse_config(cls, ["--preset", preset])
    assert isinstance(config, cls) and config.preset == preset
    for key, value in values.items():  # the file's values, typed as the fields say
        assert getattr(config, key) == value
    assert (
        config.backbone
        and config.data
        and config.max_epochs >= 1
        and config.batch_size >= 1
        and config.lr > 0
    )
    assert config.output_dir == Path("runs") / recipe


@pytest.mark.parametrize("recipe", RECIPES)
def test_print_config_round_trips(recipe, tmp_path, capsys):
    argv = ["--preset", "demo", "--max-steps", "7", "--lr", "0.5", "--output-dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        parse_config(config_class(recipe), [*argv, "--print-config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    values = yaml.safe_load(printed)
    assert values["preset"] == "demo" and values["max_steps"] == 7 and values["lr"] == 0.5
    (tmp_path / "run.yaml").write_text(printed)
    from_file = parse_config(config_class(recipe), ["--config", str(tmp_path / "run.yaml")])
    assert from_file == parse_config(config_class(recipe), argv)
    assert dump_config(from_file) == printed


def test_command_line_overrides_config_file_overrides_preset(tmp_path):
    (tmp_path / "mine.yaml").write_text("preset: demo\nmax_steps: 5\nbatch_size: 3\nplacement: houlsby\n")
    config = parse_config(
        config_class("vit_cifar"), ["--config", str(tmp_path / "mine.yaml"), "--max-steps", "9"]
    )
    assert (config.max_steps, config.batch_size, config.placement) == (9, 3, "houlsby")  # CLI, file, file
    assert (config.backbone, config.lr, config.max_epochs) == ("demo-vit", 0.003, 15)  # the demo preset


def test_a_backbone_override_drops_the_presets_open_clip_tag():
    full = parse_config(config_class("clip_retrieval"), ["--preset", "full"])
    assert (full.backbone, full.pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    other = parse_config(config_class("clip_retrieval"), ["--preset", "full", "--backbone", "ViT-L-14"])
    assert other.pretrained is None


def test_recipe_specific_options_are_typed(tmp_path):
    config = parse_config(config_class("clip_retrieval"), ["--preset", "demo", "--variant", "shared"])
    assert config.variant == "shared" and config.compare_variants is False
    fusion = parse_config(config_class("fusion_multitask"), ["--preset", "demo", "--target", "agnews"])
    assert fusion.target == "agnews" and fusion.fusion_max_steps == 20 and fusion.max_length == 64
    flags = parse_config(config_class("bert_text"), ["--preset", "demo", "--linear-probe", "--prefix-cache"])
    assert flags.linear_probe is True and flags.prefix_cache is True
    devices = parse_config(
        config_class("vit_cifar"), ["--preset", "demo", "--devices", "auto", "--limit-val-batches", "0.5"]
    )
    assert devices.devices == "auto" and devices.limit_val_batches == 0.5


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--placement", "sideways"], "placement"),
        (["--max-steps", "many"], "max_steps"),
        (["--variant", "separate"], "variant"),  # not an option of vit_cifar
        (["--layers", "first:2"], 'layers must be "all", "last:K" or comma-separated indices'),
    ],
)
def test_bad_options_are_clear_errors(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(config_class("vit_cifar"), ["--preset", "demo", *argv])
    assert exit_info.value.code != 0
    assert expected in f"{exit_info.value.code}{capsys.readouterr().err}"


def test_a_config_file_with_an_unknown_key_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("max_stepz: 3\n")
    with pytest.raises(SystemExit):
        parse_config(config_class("vit_cifar"), ["--preset", "demo", "--config", str(tmp_path / "bad.yaml")])
    assert "max_stepz" in capsys.readouterr().err


def test_auto_with_a_backbone_that_is_not_cached_says_so_and_what_to_do(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SystemExit) as exit_info:
        parse_config(config_class("vit_cifar"), ["--preset", "auto", "--backbone", "someone/not-cached-vit"])
    message = str(exit_info.value.code)
    assert "someone/not-cached-vit" in message and "not in the Hugging Face cache" in message
    assert "hf download someone/not-cached-vit" in message and "drop --backbone" in message
    assert "DEMO" not in capsys.readouterr().out
