"""``mm-adapters predict`` on ``export-onnx`` folders: ONNX Runtime with the saved preprocessing gives the rows the
PyTorch exports give (labels equal, probabilities close), for one task, several swappable tasks and CTC."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from onnx_exports import write_export

from mm_adapters.backbones import load_backbone
from mm_adapters.cli import predict as command
from mm_adapters.cli.export_onnx import main as export_onnx

TEXTS = ["the film was great", "a dull and boring plot", "lovely", "the worst acting of the year", "fine"]


def rows(capsys, argv: list[str]) -> list[dict]:
    capsys.readouterr()  # what came before (the export command's summary)
    assert command.main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture(scope="module")
def text_exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_predict")
    backbone = load_backbone("demo-bert")
    mood = write_export(backbone, root / "mood", name="mood", classes=2, seed=1)
    topic = write_export(backbone, root / "topic", name="topic", classes=3, seed=2)
    return root, mood, topic


def test_onnx_folder_predicts_the_labels_of_the_pytorch_export(text_exports, tmp_path, capsys, monkeypatch):
    root, mood, topic = text_exports
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(TEXTS) + "\n")
    assert export_onnx([str(mood), str(topic), str(tmp_path / "onnx"), "--swappable"]) == 0
    expected = rows(capsys, [str(mood), str(topic), str(lines), "--quiet", "--top-k", "2"])
    got = rows(capsys, [str(tmp_path / "onnx"), str(lines), "--quiet", "--top-k", "2"])
    assert [r["input"] for r in got] == [r["input"] for r in expected]
    for want, have in zip(expected, got, strict=True):
        for task in ("mood", "topic"):
            assert have[task]["label"] == want[task]["label"]
            assert have[task]["probability"] == pytest.approx(want[task]["probability"], abs=1e-4)
            assert [r["label"] for r in have[task]["top_k"]] == [r["label"] for r in want[task]["top_k"]]
    only = rows(capsys, [str(tmp_path / "onnx"), str(lines), "--quiet", "--task", "topic"])
    assert [list(r) for r in only] == [["input", "topic"]] * len(TEXTS)


def test_onnx_ctc_folder_transcribes_as_pytorch(tmp_path, capsys):
    backbone = load_backbone("demo-wav2vec2")
    export = write_export(backbone, tmp_path / "asr", kind="ctc", name="asr", seed=3)
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        wave = 0.1 * np.sin(np.arange(8000 + 2000 * i) / (3 + i)).astype(np.float32)
        soundfile.write(clips / f"clip{i}.wav", wave, 16000)
    assert export_onnx([str(export), str(tmp_path / "onnx")]) == 0
    expected = rows(capsys, [str(export), str(clips), "--quiet"])
    got = rows(capsys, [str(tmp_path / "onnx"), str(clips), "--quiet"])
    assert got == expected and all("transcript" in r["asr"] for r in got)


def test_onnx_mistakes_are_named(text_exports, tmp_path, capsys):
    _, mood, _ = text_exports
    assert export_onnx([str(mood), str(tmp_path / "onnx")]) == 0
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    capsys.readouterr()
    assert command.main([str(tmp_path / "onnx"), str(image), "--quiet"]) == 2
    assert "text" in capsys.readouterr().err
    assert command.main([str(tmp_path / "onnx"), str(mood), "-", "--quiet"]) == 2
    assert "one ONNX folder" in capsys.readouterr().err
    assert command.main([str(tmp_path / "onnx"), "-", "--task", "nope", "--quiet"]) == 2
    assert "Unknown task 'nope'" in capsys.readouterr().err
