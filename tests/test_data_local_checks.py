"""Each mistake in a user's data folder stops loading before training with a message that names the file, the row
and what to do, and leaves the folder as it was."""

import pytest
import soundfile
from local_folders import (
    audio_folder,
    image,
    image_folder,
    listing,
    retrieval_folder,
    text_folder,
    tone,
    write_csv,
)

from mm_adapters.data import LocalDataError, load_local_data


def refused(root, *args, **kwargs) -> str:
    """The LocalDataError message of loading ``root``; asserts that nothing was written into it."""
    before = listing(root)
    with pytest.raises(LocalDataError) as error:
        load_local_data(root, *args, **kwargs)
    assert listing(root) == before
    return str(error.value)


def test_empty_label_names_file_and_line_instead_of_becoming_a_class(tmp_path):
    write_csv(
        tmp_path / "train.csv",
        ["text", "label"],
        [["good", "pos"], ["bad", ""], ["fine", "pos"], ["meh", "neg"]],
    )
    write_csv(tmp_path / "validation.csv", ["text", "label"], [["ok", "pos"]])
    message = refused(tmp_path, "text")
    assert "train.csv line 3: empty label (column 'label')" in message
    assert "nothing was trained or written" in message and "an empty label is not a class" in message


def test_empty_transcript_is_refused(tmp_path):
    audio_folder(tmp_path, task="transcript")
    write_csv(tmp_path / "validation.csv", ["file", "transcript"], [["clips/zero_4.wav", " "]])
    assert "validation.csv line 2: empty transcript" in refused(tmp_path, "asr")


def test_missing_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(LocalDataError, match=r"Local data path .*nowhere does not exist; check the path"):
        load_local_data(tmp_path / "nowhere", "text")
    assert not (tmp_path / "nowhere").exists()


def test_missing_held_out_split_is_refused_and_names_the_two_fixes(tmp_path):
    text_folder(tmp_path)
    (tmp_path / "validation.csv").unlink()
    message = refused(tmp_path, "text")
    assert "has train.csv but no validation.<ext>, val.<ext> or test.<ext>" in message
    assert (
        "val_fraction" in message and "validating on the training data would report a wrong result" in message
    )


def test_flat_image_folder_is_never_validated_on_its_training_images(tmp_path):
    image_folder(tmp_path, held_out=None)
    message = refused(tmp_path, "image")
    assert (
        "flat <class>/<image> folder without train/ and validation/" in message and "val_fraction" in message
    )


def test_image_train_folder_without_held_out_folder_is_refused(tmp_path):
    image_folder(tmp_path, held_out="test")
    for file in (tmp_path / "test").rglob("*.png"):
        file.unlink()
    for folder in sorted((tmp_path / "test").rglob("*"), reverse=True):
        folder.rmdir()
    (tmp_path / "test").rmdir()
    assert "has train/ but no validation/, val/ or test/ folder" in refused(tmp_path, "image")


def test_val_fraction_with_an_existing_held_out_split_is_ambiguous(tmp_path):
    message = refused(text_folder(tmp_path), "text", val_fraction=0.2)
    assert "already has a held-out split (validation.csv)" in message


def test_validation_class_missing_from_train_names_its_rows(tmp_path):
    text_folder(tmp_path)
    write_csv(tmp_path / "validation.csv", ["text", "label"], [["x", "pos"], ["y", "neutral"]])
    message = refused(tmp_path, "text")
    assert "validation.csv line 3: validation class 'neutral' has no training examples" in message


def test_too_few_samples_per_class(tmp_path):
    rows = [["a", "pos"], ["b", "pos"], ["c", "neg"]]
    write_csv(tmp_path / "train.csv", ["text", "label"], rows)
    write_csv(tmp_path / "validation.csv", ["text", "label"], rows[:1])
    message = refused(tmp_path, "text")
    assert "class 'neg' has 1 training example(s), fewer than the 2 per class needed" in message


def test_a_single_class_is_refused(tmp_path):
    write_csv(tmp_path / "train.csv", ["text", "label"], [["a", "pos"], ["b", "pos"]])
    write_csv(tmp_path / "validation.csv", ["text", "label"], [["c", "pos"]])
    assert "only one class ('pos')" in refused(tmp_path, "text")


def test_jsonl_named_csv_is_not_parsed_as_csv_silently(tmp_path):
    (tmp_path / "train.csv").write_text('{"text": "a, b", "label": "pos"}\n{"text": "c", "label": "neg"}\n')
    write_csv(tmp_path / "validation.csv", ["text", "label"], [["c", "pos"]])
    message = refused(tmp_path, "text")
    assert "train.csv" in message and ("Cannot read" in message or "no text column" in message)


def test_undecodable_and_missing_clips_name_their_rows(tmp_path):
    audio_folder(tmp_path)
    (tmp_path / "clips" / "zero_1.wav").write_bytes(b"RIFF not really a wave file")
    (tmp_path / "clips" / "one_2.wav").unlink()
    message = refused(tmp_path, "audio", sample_rate=16000)
    assert f"train.csv line 3: audio {tmp_path / 'clips' / 'zero_1.wav'} cannot be decoded" in message
    assert f"audio {tmp_path / 'clips' / 'one_2.wav'} does not exist" in message
    assert "Replace or convert those files" in message


def test_clip_shorter_than_the_encoder_needs_is_refused(tmp_path):
    audio_folder(tmp_path, rate=8000)
    soundfile.write(tmp_path / "clips" / "zero_0.wav", tone(440.0, 8000, seconds=0.01), 8000)
    message = refused(tmp_path, "audio", sample_rate=16000, min_samples=400)
    assert "is too short: 80 samples at 8000 Hz is 160 at 16000 Hz, fewer than the 400" in message


def test_corrupt_image_among_many_is_found_by_parallel_workers(tmp_path):
    image_folder(tmp_path, held_out="validation", per_class=40, size=(8, 8))
    bad = tmp_path / "train" / "red" / "7.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    message = refused(tmp_path, "image", num_workers=2)
    assert f"image {bad} cannot be decoded" in message


def test_missing_retrieval_image_is_reported_once_with_its_first_row(tmp_path):
    retrieval_folder(tmp_path)
    (tmp_path / "images" / "1.png").unlink()
    message = refused(tmp_path, "retrieval")
    assert message.count("1.png does not exist") == 1 and "train.csv line 4" in message


def test_images_outside_class_folders_are_refused(tmp_path):
    image_folder(tmp_path, held_out="test")
    image(tmp_path / "train" / "stray.png", (0, 0, 0))
    assert "images outside class subfolders (['stray.png'])" in refused(tmp_path, "image")


def test_ambiguous_train_tables_are_refused(tmp_path):
    text_folder(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "pos"}\n')
    assert "several train tables (['train.csv', 'train.jsonl'])" in refused(tmp_path, "text")
