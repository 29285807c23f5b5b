"""``mm-adapters predict`` on what the recipes export, one run per modality (demo backbones, a few steps): the
predictions reproduce the validation metrics in metrics.json exactly (the same preprocessing code), several exports
run in one pass, and each mistake in the command gets a message and exit status 2."""

import csv
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from local_folders import audio_folder, image_folder, retrieval_folder, text_folder
from torchmetrics.functional.text import word_error_rate

from mm_adapters.cli import predict

STEPS = ("--max-steps", "3", "--batch-size", "8", "--resume", "none")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Data folders and the runs trained on them: recipe -> (data folder, run folder, metrics.json)."""
    root = tmp_path_factory.mktemp("predict")
    folders = {
        "bert_text": (text_folder(root / "reviews"), ("--backbone", "demo-bert")),
        "vit_cifar": (image_folder(root / "photos", held_out="validation"), ()),
        "wav2vec_accent": (audio_folder(root / "calls", rate=16000), ()),
        "wav2vec_asr": (audio_folder(root / "dictation", task="transcript"), ()),
        "clip_retrieval": (retrieval_folder(root / "pairs"), ()),
    }
    found = {}
    for recipe, (data, extra) in folders.items():
        output = root / f"run_{recipe}"
        report = importlib.import_module(f"recipes.{recipe}").main(
            ["--data", str(data), "--output-dir", str(output), *STEPS, *extra]
        )
        found[recipe] = (data, output, report)
    return found


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_text_predictions_reproduce_the_validation_accuracy(runs, tmp_path):
    data, output, report = runs["bert_text"]
    out = tmp_path / "text.jsonl"
    assert (
        predict.main([str(output / "adapter"), str(data / "validation.csv"), "-o", str(out), "--top-k", "2"])
        == 0
    )
    rows = rows_of(out)
    truth = [row["label"] for row in csv.DictReader((data / "validation.csv").open())]
    answers = [row["reviews"] for row in rows]
    assert len(rows) == len(truth) and all(len(a["top_k"]) == 2 for a in answers)
    assert all(abs(sum(t["probability"] for t in a["top_k"]) - 1) < 1e-4 for a in answers)
    accuracy = sum(a["label"] == t for a, t in zip(answers, truth, strict=True)) / len(truth)
    assert round(accuracy, 6) == report["metrics"]["val_acc"]


def test_image_folder_predictions_reproduce_the_validation_accuracy(runs, tmp_path):
    data, output, report = runs["vit_cifar"]
    out = tmp_path / "images.csv"
    assert predict.main([str(output / "adapter"), str(data / "validation"), "-o", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert set(rows[0]) == {"input", "photos", "photos_probability", "photos_top_k"}
    correct = [row["photos"] == Path(row["input"]).parent.name for row in rows]
    assert len(rows) == 4 and round(sum(correct) / len(correct), 6) == report["metrics"]["val_acc"]


def test_audio_table_predictions_reproduce_the_validation_accuracy(runs, tmp_path):
    data, output, report = runs["wav2vec_accent"]
    out = tmp_path / "audio.jsonl"
    assert (
        predict.main(
            [str(output / "adapter"), str(data / "validation.csv"), "-o", str(out), "--batch-size", "8"]
        )
        == 0
    )
    truth = [row["label"] for row in csv.DictReader((data / "validation.csv").open())]
    labels = [row["calls"]["label"] for row in rows_of(out)]
    accuracy = sum(a == t for a, t in zip(labels, truth, strict=True)) / len(truth)
    assert round(accuracy, 6) == report["metrics"]["val_acc"]


def test_ctc_transcripts_reproduce_the_validation_wer(runs, tmp_path):
    data, output, report = runs["wav2vec_asr"]
    out = tmp_path / "asr.jsonl"
    assert (
        predict.main(
            [str(output / "adapter"), str(data / "validation.csv"), "-o", str(out), "--batch-size", "8"]
        )
        == 0
    )
    truth = [row["transcript"] for row in csv.DictReader((data / "validation.csv").open())]
    transcripts = [row["dictation"]["transcript"] for row in rows_of(out)]
    assert round(float(word_error_rate(transcripts, truth)), 6) == report["metrics"]["val_wer"]


def test_retrieval_ranks_captions_for_images_and_images_for_texts(runs, tmp_path):
    data, output, _ = runs["clip_retrieval"]
    captions = tmp_path / "captions.txt"
    captions.write_text("a red square\na blue square\na green circle\n")
    out = tmp_path / "ranked.jsonl"
    assert predict.main([str(output / "adapter"), str(data / "images"), "--captions", str(captions), "--top-k", "3",
                         "-o", str(out)]) == 0  # fmt: skip
    rows = rows_of(out)
    assert len(rows) == 8
    ranked = rows[0]["pairs"]["top_k"]
    assert sorted(r["label"] for r in ranked) == ["a blue square", "a green circle", "a red square"]
    assert abs(sum(r["probability"] for r in ranked) - 1) < 1e-4
    texts = tmp_path / "queries.txt"
    texts.write_text("a red square\n")
    out = tmp_path / "images.jsonl"
    assert (
        predict.main([str(output / "adapter"), str(texts), "--images", str(data / "images"), "-o", str(out)])
        == 0
    )
    assert rows_of(out)[0]["pairs"]["label"].endswith(".png")


def test_two_exports_on_one_backbone_answer_in_one_run(runs, tmp_path):
    data, output, _ = runs["bert_text"]
    second = tmp_path / "second"
    importlib.import_module("recipes.bert_text").main(
        ["--data", str(data), "--output-dir", str(second), "--backbone", "demo-bert", "--name", "mood",
         "--max-steps", "1"]
    )  # fmt: skip
    out = tmp_path / "both.jsonl"
    code = predict.main(
        [str(output / "adapter"), str(second / "adapter"), str(data / "validation.csv"), "-o", str(out)]
    )
    assert code == 0
    both = rows_of(out)
    alone = tmp_path / "alone.jsonl"
    assert predict.main([str(second / "adapter"), str(data / "validation.csv"), "-o", str(alone)]) == 0
    assert [row["mood"]["label"] for row in both] == [row["mood"]["label"] for row in rows_of(alone)]
    assert all(set(row) == {"input", "reviews", "mood"} for row in both)


def test_an_old_export_needs_and_takes_the_backbone_by_name(runs, tmp_path, capsys):
    data, output, _ = runs["bert_text"]
    old = tmp_path / "old"
    old.mkdir()
    for file in (output / "adapter").iterdir():
        if file.name != "task.json":
            (old / file.name).write_bytes(file.read_bytes())
    assert predict.main([str(old), str(data / "validation.csv")]) == 2
    assert "pass --backbone NAME" in capsys.readouterr().err
    assert predict.main([str(old), str(data / "validation.csv"), "--backbone", "demo-bert", "--quiet"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 8


def test_a_hub_id_is_an_export_as_its_folder_is(runs, tmp_path, monkeypatch, capsys):
    """``org/name[@rev]`` works wherever a folder does: predict read it as a missing input before."""
    import huggingface_hub
    from hf_standin import snapshot

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    data, output, _ = runs["bert_text"]
    published = snapshot(tmp_path / "hf", "me/reviews-adapter")
    for file in (output / "adapter").iterdir():
        (published / file.name).write_bytes(file.read_bytes())
    table = str(data / "validation.csv")
    assert predict.main([str(output / "adapter"), table, "--quiet"]) == 0
    by_folder = capsys.readouterr().out
    assert predict.main(["me/reviews-adapter", table, "--quiet"]) == 0
    assert capsys.readouterr().out == by_folder and len(by_folder.splitlines()) == 8
    assert predict.main(["me/not-published", table]) == 2
    assert "'me/not-published' is not a local folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("task.json", '{"format": "mm_adapters.task/1", "task": ', "Cannot read"),
        ("task.json", '{"format": "mm_adapters.task/1"}', "lacks 'task' (str), 'inputs' (list), 'backbone'"),
        ("task.json", "[1, 2]", "holds a JSON list, not an object"),
        ("labels.json", "{", "Cannot read"),
    ],
)
def test_a_corrupted_export_exits_2_naming_the_file(runs, tmp_path, capsys, file, content, message):
    """These were tracebacks (KeyError, AttributeError) with exit status 1."""
    data, output, _ = runs["bert_text"]
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in (output / "adapter").iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / file).write_text(content)
    assert predict.main([str(broken), str(data / "validation.csv")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and file in error


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["{missing_export}", "{text}"], "does not exist: start with export folders"),
        (["{text_export}", "{missing_input}"], "does not exist; check the path"),
        (["{text_export}", "{images}"], "is a folder; text comes as a table"),
        (["{image_export}", "{text}"], "has no image column"),
        (["{image_export}", "{wav}"], "is an audio file, but these tasks read image"),
        (["{text_export}", "{image_export}", "{text}"], "read different inputs"),
        (["{text_export}", "{text}", "-o", "{out_txt}"], "name a .csv or .jsonl file"),
        (["{text_export}", "{text}", "-o", "{out_nowhere}"], "does not exist; create it first"),
        (["{image_export}", "{broken}"], "Cannot read image input"),
        (["{text_export}", "{text}", "--task", "nope"], "Unknown task 'nope'"),
    ],
)
def test_mistakes_exit_2_naming_what_to_fix(runs, tmp_path, capsys, arguments, message):
    (tmp_path / "broken.png").write_text("not an image")
    values = {
        "missing_export": str(tmp_path / "no_such_run" / "adapter"),
        "text_export": str(runs["bert_text"][1] / "adapter"),
        "image_export": str(runs["vit_cifar"][1] / "adapter"),
        "text": str(runs["bert_text"][0] / "validation.csv"),
        "images": str(runs["vit_cifar"][0]),
        "wav": str(next((runs["wav2vec_accent"][0] / "clips").glob("*.wav"))),
        "missing_input": str(tmp_path / "nowhere.csv"),
        "out_txt": str(tmp_path / "out.txt"),
        "out_nowhere": str(tmp_path / "no_such_folder" / "out.csv"),  # was exit 1 after loading the model
        "broken": str(tmp_path / "broken.png"),
    }
    assert predict.main([argument.format(**values) for argument in arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar, if it started
    assert error.startswith("error: ") and message in error


def test_console_entry_point_reads_stdin(runs):
    _, output, _ = runs["bert_text"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mm_adapters", "predict", str(output / "adapter"), "--quiet"],
        input="the film was great\n\nthe film was awful\n", capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["input"] for row in rows] == ["stdin:1", "stdin:3"] and rows[0]["reviews"]["label"] in (
        "neg",
        "pos",
    )
