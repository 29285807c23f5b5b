"""Every recipe on a small user folder of its modality with only ``--data FOLDER --output-dir DIR`` (the offline
auto preset: demo backbones), what the outputs carry, and the mistakes that stop a run before it writes anything."""

import importlib
import json

import pytest
from local_folders import audio_folder, image_folder, retrieval_folder, text_folder, write_csv

from mm_adapters.backbones import load_backbone
from mm_adapters.lightning import load_for_inference


def run(recipe: str, data, output, *extra: str) -> dict:
    return importlib.import_module(f"recipes.{recipe}").main(
        ["--data", str(data), "--output-dir", str(output), *extra]
    )


def check_classification_outputs(report: dict, output, names: list[str], adapter: str) -> None:
    assert report == json.loads((output / "metrics.json").read_text())
    assert report["class_names"] == names and report["adapter_name"] == adapter
    assert json.loads((output / "adapter" / "labels.json").read_text())["class_names"] == names
    assert json.loads((output / "adapter" / "adapter_config.json").read_text())["name"] == adapter
    assert 0.0 <= report["metrics"]["val_acc"] <= 1.0 and report["steps"] >= 1


def test_text_folder_trains_with_data_and_output_dir_only(tmp_path, capsys):
    report = run("bert_text", text_folder(tmp_path / "reviews"), tmp_path / "out")
    check_classification_outputs(report, tmp_path / "out", ["neg", "pos"], "reviews")
    printed = capsys.readouterr().out
    assert "columns: text='text', label='label'" in printed
    assert "on your data" in printed and "all-MiniLM-L6-v2" in printed  # the auto banner names what it uses
    backbone = load_backbone("minilm")
    head = load_for_inference(backbone, tmp_path / "out" / "adapter")
    assert head.class_names == ["neg", "pos"]


def test_audio_folder_at_another_rate_trains(tmp_path):
    report = run(
        "wav2vec_accent", audio_folder(tmp_path / "calls", rate=22050), tmp_path / "out", "--name", "digits"
    )
    check_classification_outputs(report, tmp_path / "out", ["one", "zero"], "digits")


def test_png_image_folder_with_test_split_trains(tmp_path):
    report = run(
        "vit_cifar", image_folder(tmp_path / "photos", held_out="test", size=(40, 28)), tmp_path / "out"
    )
    check_classification_outputs(report, tmp_path / "out", ["blue", "red"], "photos")


def test_flat_image_folder_trains_with_val_fraction(tmp_path):
    photos = image_folder(tmp_path / "photos", held_out=None, per_class=4)
    with pytest.raises(SystemExit, match="flat <class>/<image> folder.*--val-fraction"):
        run("vit_cifar", photos, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    report = run("vit_cifar", photos, tmp_path / "out", "--val-fraction", "0.34", "--max-steps", "1")
    assert report["class_names"] == ["blue", "red"]


def test_retrieval_folder_of_images_and_captions_trains(tmp_path):
    report = run("clip_retrieval", retrieval_folder(tmp_path / "pairs"), tmp_path / "out")
    assert report["adapter_name"] == "pairs" and 0.0 <= report["metrics"]["val_i2t_recall@1"] <= 1.0
    assert json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())["name"] == "pairs"


def test_asr_folder_of_clips_and_transcripts_trains(tmp_path):
    report = run("wav2vec_asr", audio_folder(tmp_path / "dictation", task="transcript"), tmp_path / "out")
    assert report["vocabulary"] == list("enortwz") and "val_wer" in report["metrics"]
    labels = json.loads((tmp_path / "out" / "adapter" / "labels.json").read_text())
    assert labels["vocabulary"] == list("enortwz")


def test_fusion_with_one_text_folder_per_task(tmp_path):
    tasks = tmp_path / "tasks"
    text_folder(tasks / "mood")
    write_csv(tasks / "topic" / "train.csv", ["sentence", "category"], [[f"goal {i}", "sport"] for i in range(4)]
              + [[f"vote {i}", "politics"] for i in range(4)])  # fmt: skip
    write_csv(
        tasks / "topic" / "validation.csv",
        ["sentence", "category"],
        [["match", "sport"], ["poll", "politics"]],
    )
    report = run("fusion_multitask", tasks, tmp_path / "out")
    assert report["target"] == "mood" and report["fusion"]["adapters"] == ["mood", "topic"]
    assert report["class_names"] == {"mood": ["neg", "pos"], "topic": ["politics", "sport"]}


def test_bad_row_stops_the_run_before_anything_is_written(tmp_path):
    data = text_folder(tmp_path / "reviews")
    write_csv(data / "validation.csv", ["text", "label"], [["fine", "pos"], ["odd", ""]])
    with pytest.raises(SystemExit) as error:
        run("bert_text", data, tmp_path / "out", "--backbone", "demo-bert")
    assert "validation.csv line 3: empty label" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_column_options_and_their_messages_use_the_flags(tmp_path):
    write_csv(tmp_path / "d" / "train.csv", ["review", "stars"], [["good", "5"], ["bad", "1"]] * 2)
    write_csv(tmp_path / "d" / "validation.csv", ["review", "stars"], [["ok", "5"]])
    with pytest.raises(SystemExit, match=r"no label column.*pass --label-column <column>"):
        run("bert_text", tmp_path / "d", tmp_path / "out", "--backbone", "demo-bert")
    report = run("bert_text", tmp_path / "d", tmp_path / "out", "--backbone", "demo-bert", "--label-column", "stars",
                 "--max-steps", "1")  # fmt: skip
    assert report["class_names"] == ["1", "5"]


def test_missing_local_path_says_so(tmp_path):
    with pytest.raises(SystemExit, match=r"Local data path .*nowhere does not exist"):
        run("clip_retrieval", tmp_path / "nowhere", tmp_path / "out")


def test_rerun_keeps_a_finished_run_and_other_data_is_not_resumed(tmp_path):
    data = text_folder(tmp_path / "reviews")
    tiny = ("--backbone", "demo-bert", "--max-steps", "2")
    first = run("bert_text", data, tmp_path / "out", *tiny)
    report = (tmp_path / "out" / "metrics.json").read_text()
    with pytest.raises(SystemExit, match=r"finished run of the same data and settings.*--resume none"):
        run("bert_text", data, tmp_path / "out", *tiny)
    other = text_folder(tmp_path / "other", train=20)
    with pytest.raises(SystemExit) as error:
        run("bert_text", other, tmp_path / "out", *tiny)
    message = str(error.value)
    assert f"data {data} (fingerprint" in message and f"{other} (fingerprint" in message
    assert "--resume none" in message and "another --output-dir" in message
    assert (tmp_path / "out" / "metrics.json").read_text() == report
    again = run("bert_text", other, tmp_path / "out", *tiny, "--resume", "none")
    assert again["steps"] == first["steps"] and again["data_fingerprint"] != first["data_fingerprint"]


def test_help_documents_the_local_layout(capsys):
    with pytest.raises(SystemExit):
        importlib.import_module("recipes.wav2vec_asr").main(["--help"])
    text = capsys.readouterr().out
    assert (
        "train.<ext> and validation.<ext>" in text
        and "--transcript-column" in text
        and "--val-fraction" in text
    )


def test_local_data_trains_by_steps_that_fit_its_size_and_stops_early(tmp_path, capsys):
    """16 rows in batches of 4 are 4 steps an epoch: the schedule asks for the 300-step minimum (not the preset's
    one epoch), and early stopping on val_acc ends it once 8 validation rows stop improving (at most 8 gains)."""
    folder = text_folder(tmp_path / "reviews")
    report = run("bert_text", folder, tmp_path / "out", "--backbone", "demo-bert", "--batch-size", "4")
    assert report["schedule"].startswith(
        "local data: 300 steps (at least 300 for small data; 16 training rows"
    )
    assert "stopped early" in report["schedule"] and "val_acc stopped improving" in report["schedule"]
    assert 4 * 5 <= report["steps"] < 300  # at least the patience of 5 validations, one per epoch
    assert "schedule: local data: 300 steps" in capsys.readouterr().out
    given = run("bert_text", folder, tmp_path / "given", "--backbone", "demo-bert", "--max-steps", "3")
    assert given["steps"] == 3 and "max_steps=3 (preset and command line)" in given["schedule"]
