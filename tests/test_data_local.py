"""The local-data contract: splits found by name, tables read by their real format, columns found by documented
names (or named), media paths resolved, one label encoding for every split."""

import json
import random

import pytest
from datasets import ClassLabel, Dataset
from local_folders import audio_folder, image_folder, retrieval_folder, text_folder, write_csv

from mm_adapters.data import LocalDataError, load_local_data, shared_class_labels


def test_text_folder_with_label_names_gives_sorted_ids_and_reports_its_columns(tmp_path):
    data = load_local_data(text_folder(tmp_path), "text")
    assert data.class_names == ["neg", "pos"]
    assert data.train.features["label"] == ClassLabel(names=["neg", "pos"])
    assert data.validation.features["label"] == data.train.features["label"]
    first = data.train[0]
    assert first["text"].startswith("the film was") and data.class_names[first["label"]] == "pos"
    assert data.columns == {"text": "text", "label": "label"}
    summary = data.summary()
    assert "train.csv (16 rows)" in summary and "validation.csv (8 rows)" in summary
    assert "text='text', label='label'" in summary and "2 classes: neg, pos" in summary


def test_documented_names_and_overrides_pick_the_columns(tmp_path):
    write_csv(
        tmp_path / "train.csv", ["id", "Sentence", "category"], [["1", "a b", "x"], ["2", "c d", "y"]] * 2
    )
    write_csv(tmp_path / "validation.csv", ["id", "Sentence", "category"], [["3", "e f", "x"]])
    data = load_local_data(tmp_path, "text")
    assert data.columns == {"text": "Sentence", "label": "category"}
    named = load_local_data(tmp_path, "text", text_column="id", label_column="category")
    assert named.train["text"] == ["1", "2", "1", "2"]
    with pytest.raises(LocalDataError, match=r"no column 'stars' \(label_column\); its columns are \['id', "):
        load_local_data(tmp_path, "text", label_column="stars")


def test_table_without_a_known_column_says_which_names_it_tried_and_what_to_pass(tmp_path):
    write_csv(tmp_path / "train.csv", ["review", "stars"], [["good", "5"], ["bad", "1"]])
    write_csv(tmp_path / "validation.csv", ["review", "stars"], [["ok", "5"]])
    with pytest.raises(LocalDataError) as error:
        load_local_data(tmp_path, "text")
    assert "no label column" in str(error.value) and "label_column='<column>'" in str(error.value)
    assert "['review', 'stars']" in str(error.value)


@pytest.mark.parametrize("extension", ["jsonl", "json", "parquet", "tsv"])
def test_each_table_format_is_read_by_its_real_format(tmp_path, extension):
    rows = [{"text": 'he said "fine", then, left', "label": "pos"}, {"text": "a, b\tc", "label": "neg"}] * 2
    for split in ("train", "validation"):
        path = tmp_path / f"{split}.{extension}"
        if extension == "jsonl":
            path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
        elif extension == "json":
            path.write_text(json.dumps(rows))
        elif extension == "parquet":
            Dataset.from_list(rows).to_parquet(str(path))
        else:
            path.write_text(
                "text\tlabel\n" + "".join(f"{r['text'].replace(chr(9), ' ')}\t{r['label']}\n" for r in rows)
            )
    data = load_local_data(tmp_path, "text")
    expected = rows[0]["text"] if extension != "tsv" else 'he said "fine", then, left'
    assert data.train[0]["text"] == expected and len(data.train) == 4


def test_the_train_file_itself_finds_its_held_out_table(tmp_path):
    text_folder(tmp_path)
    assert load_local_data(tmp_path / "train.csv", "text").sources["validation"] == str(
        tmp_path / "validation.csv"
    )
    (tmp_path / "validation.csv").rename(tmp_path / "accent_val.csv")
    (tmp_path / "train.csv").rename(tmp_path / "accent_train.csv")
    data = load_local_data(tmp_path / "accent_train.csv", "text")
    assert data.sources == {
        "train": str(tmp_path / "accent_train.csv"),
        "validation": str(tmp_path / "accent_val.csv"),
    }


def test_test_and_val_tables_are_accepted_as_the_held_out_split(tmp_path):
    text_folder(tmp_path)
    (tmp_path / "validation.csv").rename(tmp_path / "test.csv")
    assert load_local_data(tmp_path, "text").sources["validation"].endswith("test.csv")


def test_integer_labels_sort_as_numbers_and_every_split_shares_the_ids(tmp_path):
    write_csv(
        tmp_path / "train.csv",
        ["text", "label"],
        [[f"t{i}", str(v)] for i, v in enumerate([10, 2, 2, 10, 7, 7])],
    )
    write_csv(tmp_path / "validation.csv", ["text", "label"], [["v", "10"]])
    data = load_local_data(tmp_path, "text")
    assert data.class_names == ["2", "7", "10"]
    assert data.validation["label"] == [2] and data.train["label"] == [2, 0, 0, 2, 1, 1]


def test_label_names_name_integer_labels(tmp_path):
    write_csv(tmp_path / "train.csv", ["sentence", "label"], [["a", "0"], ["b", "1"]] * 2)
    write_csv(tmp_path / "validation.csv", ["sentence", "label"], [["c", "1"]])
    data = load_local_data(tmp_path, "text", label_names=["negative", "positive"])
    assert data.class_names == ["negative", "positive"] and data.validation["label"] == [1]


def test_audio_folder_resolves_clip_paths_against_the_table(tmp_path):
    data = load_local_data(audio_folder(tmp_path, rate=22050), "audio", sample_rate=16000, min_samples=400)
    assert data.columns == {"path": "file", "label": "label"}
    assert data.train[0]["path"] == str(tmp_path / "clips" / "zero_0.wav")
    assert data.class_names == ["one", "zero"] and len(data.validation) == 4


def test_absolute_media_paths_are_kept(tmp_path):
    audio_folder(tmp_path / "clips_here")
    rows = [[str(tmp_path / "clips_here" / "clips" / f"zero_{i}.wav"), "zero"] for i in range(2)]
    rows += [[str(tmp_path / "clips_here" / "clips" / f"one_{i}.wav"), "one"] for i in range(2)]
    write_csv(tmp_path / "elsewhere" / "train.csv", ["path", "label"], rows)
    write_csv(tmp_path / "elsewhere" / "validation.csv", ["path", "label"], rows[:1])
    data = load_local_data(tmp_path / "elsewhere", "audio")
    assert data.train["path"] == [row[0] for row in rows]


def test_asr_folder_builds_the_vocabulary_from_every_transcript(tmp_path):
    data = load_local_data(audio_folder(tmp_path, task="transcript"), "asr")
    assert data.columns == {"path": "file", "transcript": "transcript"}
    assert "".join(data.vocabulary.chars) == "enortwz"
    assert data.class_names is None and data.train[0]["transcript"] == "zero"


def test_image_folder_with_a_test_split(tmp_path):
    data = load_local_data(image_folder(tmp_path, held_out="test"), "image")
    assert data.class_names == ["blue", "red"] and len(data.train) == 8 and len(data.validation) == 4
    assert data.sources["validation"] == str(tmp_path / "test")
    assert all("/test/" in path for path in data.validation["image"])


def test_flat_image_folder_is_split_by_val_fraction_without_overlap(tmp_path):
    data = load_local_data(
        image_folder(tmp_path, held_out=None, per_class=8), "image", val_fraction=0.25, seed=3
    )
    train, held = set(data.train["image"]), set(data.validation["image"])
    assert not train & held and len(train) + len(held) == 20
    assert sorted(data.validation["label"]) == [0, 0, 1, 1]  # stratified: a quarter of each class
    assert "held out (seed 3)" in data.sources["validation"]


def test_retrieval_folder_groups_captions_by_image_and_holds_out_whole_images(tmp_path):
    data = load_local_data(retrieval_folder(tmp_path), "retrieval")
    assert data.columns == {"image_path": "image_path", "caption": "caption"}
    assert data.train["image_id"][:4] == [0, 0, 1, 1] and len(data.validation) == 4
    (tmp_path / "validation.csv").unlink()
    split = load_local_data(tmp_path, "retrieval", val_fraction=0.34)
    assert not set(split.train["image_path"]) & set(split.validation["image_path"])


def test_fingerprint_follows_the_data_and_the_options(tmp_path):
    text_folder(tmp_path)
    first = load_local_data(tmp_path, "text").fingerprint
    assert load_local_data(tmp_path / "train.csv", "text").fingerprint == first
    with (tmp_path / "train.csv").open("a") as handle:
        handle.write("one more line,pos\n")
    changed = load_local_data(tmp_path, "text")
    assert (
        changed.fingerprint != first and len(changed.train) == 17
    )  # the table is read again, not a stale cache


def test_hub_splits_with_string_labels_share_one_encoding():
    rng = random.Random(0)
    train = Dataset.from_dict(
        {"accent": ["usa", "german", "greek", "usa"], "x": [rng.random() for _ in range(4)]}
    )
    test = Dataset.from_dict({"accent": ["greek", "usa"], "x": [0.0, 1.0]})
    shared = shared_class_labels({"train": train, "test": test}, "accent")
    names = ["german", "greek", "usa"]
    assert shared["train"].features["accent"].names == names == shared["test"].features["accent"].names
    assert shared["test"]["accent"] == [1, 2] and shared["train"]["accent"] == [2, 0, 1, 2]
