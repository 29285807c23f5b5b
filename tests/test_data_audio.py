"""Audio CSVs, decoding (mono, resampled, normalised), padding, CTC labels and the character vocabulary."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from mm_adapters.data import (
    AudioClassificationCollator,
    CharVocabulary,
    CTCCollator,
    label_names,
    load_audio_csv,
    read_audio,
)


def tone(seconds: float, rate: int, frequency: float = 440.0) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


@pytest.fixture
def audio_folder(tmp_path: Path) -> Path:
    clips = tmp_path / "clips"
    clips.mkdir()
    soundfile.write(clips / "mono8k.wav", tone(0.5, 8000), 8000)
    left = tone(1.0, 44100)
    soundfile.write(clips / "stereo44k.wav", np.stack([left, 0.5 * left], axis=1), 44100)
    soundfile.write(clips / "mono16k.flac", tone(0.25, 16000, 200.0), 16000)
    (tmp_path / "labels.csv").write_text(
        "path,label\nclips/mono8k.wav,yes\nclips/stereo44k.wav,no\nclips/mono16k.flac,yes\n"
    )
    (tmp_path / "asr.csv").write_text(
        "path,transcript\nclips/mono8k.wav,one two\nclips/stereo44k.wav,two\nclips/mono16k.flac,ten\n"
    )
    return tmp_path


def test_stereo_44k_comes_out_mono_16k_and_normalised(audio_folder: Path) -> None:
    waveform = read_audio(audio_folder / "clips" / "stereo44k.wav", 16000)
    assert waveform.shape == (16000,) and waveform.dtype == torch.float32
    assert abs(waveform.mean().item()) < 1e-4 and abs(waveform.std(correction=0).item() - 1.0) < 1e-3
    raw = read_audio(audio_folder / "clips" / "stereo44k.wav", 44100, normalize=False)
    torch.testing.assert_close(raw, torch.from_numpy(0.75 * tone(1.0, 44100)), atol=1e-4, rtol=0)


def test_audio_csv_collates_to_contract(audio_folder: Path) -> None:
    dataset = load_audio_csv(audio_folder / "labels.csv")
    assert label_names(dataset) == ["no", "yes"] and dataset["label"] == [1, 0, 1]
    assert all(Path(path).is_absolute() for path in dataset["path"])
    batch = AudioClassificationCollator(16000, min_samples=400)(
        [{**dataset[i], "index": i} for i in range(3)]
    )
    assert set(batch) == {"input_values", "attention_mask", "labels", "index"}
    assert batch["input_values"].shape == (3, 16000) and batch["input_values"].dtype == torch.float32
    assert batch["attention_mask"].dtype == torch.long
    assert batch["attention_mask"].sum(dim=1).tolist() == [8000, 16000, 4000]
    assert batch["input_values"][0, 8000:].abs().sum() == 0
    assert batch["labels"].tolist() == [1, 0, 1] and batch["index"].tolist() == [0, 1, 2]


def test_ctc_batch_has_padded_character_labels(audio_folder: Path) -> None:
    dataset = load_audio_csv(audio_folder / "asr.csv")
    assert dataset.column_names == ["path", "transcript"]
    vocabulary = CharVocabulary.from_texts(dataset["transcript"])
    batch = CTCCollator(16000, vocabulary)([{**dataset[i], "index": 5 + i} for i in range(3)])
    assert batch["input_values"].shape == (3, 16000) and batch["transcripts"] == ["one two", "two", "ten"]
    assert batch["labels"].shape == (3, 7) and batch["labels"].dtype == torch.long
    assert batch["labels"][1].tolist() == vocabulary.encode("two") + [-100] * 4
    assert vocabulary.decode(batch["labels"][0]) == "one two" and batch["index"].tolist() == [5, 6, 7]


def test_empty_and_too_short_audio_raise_clear_errors(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "zero_bytes.wav").write_bytes(b"")
    soundfile.write(tmp_path / "short.wav", tone(0.01, 8000), 8000)  # 80 samples -> 160 at 16 kHz
    with pytest.raises(ValueError, match="empty"):
        read_audio(tmp_path / "empty.wav", 16000)
    with pytest.raises(ValueError, match="empty"):
        read_audio(tmp_path / "zero_bytes.wav", 16000)
    with pytest.raises(ValueError, match="160 samples at 16000 Hz, fewer than min_samples=400"):
        read_audio(tmp_path / "short.wav", 16000, min_samples=400)
    assert read_audio(tmp_path / "short.wav", 16000, min_samples=160).shape == (160,)


def test_audio_csv_errors(audio_folder: Path) -> None:
    (audio_folder / "missing.csv").write_text("path,label\nclips/nope.wav,yes\n")
    with pytest.raises(ValueError, match="do not exist"):
        load_audio_csv(audio_folder / "missing.csv")
    (audio_folder / "range.csv").write_text("path,label\nclips/mono8k.wav,0\nclips/mono16k.flac,3\n")
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        load_audio_csv(audio_folder / "range.csv", label_names=["a", "b"])


def test_vocabulary_round_trip_and_ctc_decoding(tmp_path: Path) -> None:
    vocabulary = CharVocabulary.from_texts(["zero", "one two"])
    assert vocabulary.blank_id == 0 and len(vocabulary) == 1 + len(set("zeroone two"))
    ids = vocabulary.encode("two")
    assert 0 not in ids and vocabulary.decode(ids) == "two"
    t, w, o = ids
    assert vocabulary.decode_ctc([0, t, t, 0, w, 0, 0, o, o]) == "two"
    assert vocabulary.decode_ctc([o, 0, o]) == "oo"
    vocabulary.save(tmp_path / "vocab.json")
    assert CharVocabulary.load(tmp_path / "vocab.json") == vocabulary
    with pytest.raises(ValueError, match=r"\['x'\] of 'tox' are not in the vocabulary"):
        vocabulary.encode("tox")
