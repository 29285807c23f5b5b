"""The bundled demo subsets load from the repository's data/ folder and keep their splits apart."""

import re
from collections import Counter
from pathlib import Path

import pytest

from mm_adapters.data import (
    SST2_LABEL_NAMES,
    AudioClassificationCollator,
    CharVocabulary,
    CTCCollator,
    ImageClassificationCollator,
    ImageTransform,
    agnews_tsv,
    cifar10_dir,
    coco_mini,
    data_root,
    fsdd_csv,
    label_names,
    load_audio_csv,
    load_coco_captions,
    load_image_folder,
    load_text_table,
    sst2_tsv,
)

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def recording(path: str) -> tuple[str, str, str]:
    digit, speaker, index = re.fullmatch(r"(\d)_(\w+)_(\d+)\.wav", Path(path).name).groups()
    return digit, speaker, index


def test_data_root_is_the_repository_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MM_ADAPTERS_DATA", raising=False)
    assert data_root() == REPO_DATA.resolve()
    monkeypatch.setenv("MM_ADAPTERS_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="MM_ADAPTERS_DATA"):
        data_root()
    assert data_root(REPO_DATA) == REPO_DATA.resolve()


def test_cifar10_subset(tmp_path: Path) -> None:
    counts = Counter(path.parent.name for path in (cifar10_dir() / "train").glob("*/*.jpg"))
    assert len(counts) == 10 and set(counts.values()) == {100}
    test = load_image_folder(cifar10_dir(), "test", cache_dir=str(tmp_path))
    assert len(test) == 500 and label_names(test)[:2] == ["airplane", "automobile"]
    batch = ImageClassificationCollator(ImageTransform(32))([{**test[i], "index": i} for i in (0, 499)])
    assert batch["pixel_values"].shape == (2, 3, 32, 32) and batch["labels"].tolist() == [0, 9]


def test_accent_split_has_no_recording_in_both_splits() -> None:
    train, val = load_audio_csv(fsdd_csv("accent", "train")), load_audio_csv(fsdd_csv("accent", "val"))
    assert (len(train), len(val)) == (360, 120)
    train_recordings = {recording(path) for path in train["path"]}
    val_recordings = {recording(path) for path in val["path"]}
    assert len(train_recordings) == 360 and not train_recordings & val_recordings
    assert {index for *_, index in val_recordings} == {"6", "7"}
    assert label_names(train) == label_names(val) == ["belgian_french", "german", "greek", "usa"]
    assert set(train["label"]) == set(val["label"]) == {0, 1, 2, 3}
    batch = AudioClassificationCollator(16000, min_samples=400)([{**val[i], "index": i} for i in range(2)])
    assert batch["input_values"].dim() == 2 and batch["input_values"].shape[1] > 8000


def test_asr_split_matches_accent_split_and_digits() -> None:
    for split in ("train", "val"):
        asr, accent = load_audio_csv(fsdd_csv("asr", split)), load_audio_csv(fsdd_csv("accent", split))
        assert asr["path"] == accent["path"]
        assert all(
            DIGITS[int(recording(path)[0])] == text
            for path, text in zip(asr["path"], asr["transcript"], strict=True)
        )
    vocabulary = CharVocabulary.from_texts(DIGITS)
    batch = CTCCollator(16000, vocabulary, min_samples=400)([{**asr[i], "index": i} for i in range(2)])
    assert [vocabulary.decode(ids) for ids in batch["labels"]] == batch["transcripts"]


def test_coco_mini_has_five_captions_per_image() -> None:
    train, val = load_coco_captions(*coco_mini("train")), load_coco_captions(*coco_mini("val"))
    assert (len(train), len(val)) == (400, 395)
    assert len(set(train["image_id"])) == 80 and len(set(val["image_id"])) == 79
    assert max(Counter(train["image_id"]).values()) == 5


@pytest.mark.parametrize(
    ("path", "rows", "classes"),
    [
        (sst2_tsv("train"), 20000, ["0", "1"]),
        (sst2_tsv("validation"), 872, ["0", "1"]),
        (agnews_tsv("train"), 2000, ["Business", "Sci/Tech", "Sports", "World"]),
        (agnews_tsv("validation"), 1000, ["Business", "Sci/Tech", "Sports", "World"]),
    ],
)
def test_text_subsets(path: Path, rows: int, classes: list[str]) -> None:
    dataset = load_text_table(path)
    assert len(dataset) == rows and label_names(dataset) == classes
    if "sst2" in str(path):
        named = load_text_table(path, label_names=SST2_LABEL_NAMES)
        assert label_names(named) == ["negative", "positive"] and named["label"] == dataset["label"]
    counts = Counter(dataset["label"])
    assert len(counts) == len(classes)
    if "agnews" in str(path):
        assert set(counts.values()) == {rows // 4}
