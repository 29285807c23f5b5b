"""Text tables (header detection, labels), tokenisation with truncation warnings, and label checks."""

import warnings
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset
from transformers import BertTokenizer

from mm_adapters.data import (
    TextClassificationCollator,
    encode_labels,
    encode_texts,
    label_names,
    load_text_table,
    to_class_labels,
)

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "good", "bad", "film", "very"]


@pytest.fixture(scope="module")
def tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={word: index for index, word in enumerate(WORDS)})


def test_tsv_with_header_and_int_labels(tmp_path: Path, tokenizer: BertTokenizer) -> None:
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na good film\t1\na bad film\t0\n\t1\n")
    dataset = load_text_table(tmp_path / "train.tsv")
    assert dataset["text"] == ["a good film", "a bad film", ""] and dataset["label"] == [1, 0, 1]
    batch = TextClassificationCollator(tokenizer, max_length=8)(
        [{**dataset[i], "index": i} for i in range(3)]
    )
    assert set(batch) == {"input_ids", "attention_mask", "labels", "index"}
    assert batch["input_ids"].shape == (3, 5) and batch["input_ids"].dtype == torch.long
    assert batch["input_ids"][0].tolist() == [2, 5, 6, 8, 3]
    assert batch["attention_mask"].sum(dim=1).tolist() == [5, 5, 2]  # empty text: [CLS] [SEP]
    assert batch["labels"].tolist() == [1, 0, 1] and batch["index"].tolist() == [0, 1, 2]


def test_headerless_csv_with_string_labels(tmp_path: Path) -> None:
    (tmp_path / "news.csv").write_text(
        '"Stocks rise, again",Business\nTeam wins,Sports\nMarkets fall,Business\n'
    )
    dataset = load_text_table(tmp_path / "news.csv")
    assert len(dataset) == 3 and dataset[0]["text"] == "Stocks rise, again"
    assert label_names(dataset) == ["Business", "Sports"] and dataset["label"] == [0, 1, 0]
    named = load_text_table(tmp_path / "news.csv", label_names=["Sports", "Business", "World"])
    assert named["label"] == [1, 0, 1] and label_names(named) == ["Sports", "Business", "World"]


def test_headerless_tsv_with_int_labels_keeps_first_row(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("good film\t1\nbad film\t0\n")
    assert load_text_table(tmp_path / "a.tsv")["text"] == ["good film", "bad film"]


def test_over_long_text_is_truncated_with_a_warning(tokenizer: BertTokenizer) -> None:
    texts = ["very " * 20 + "good", "a film"]
    with pytest.warns(UserWarning, match="longer than max_length=6 tokens and were truncated"):
        encoded = encode_texts(tokenizer, texts, max_length=6)
    assert encoded["input_ids"].shape == (2, 6) and encoded["input_ids"][0, -1].item() == 3  # ends in [SEP]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encode_texts(tokenizer, texts, max_length=32)["input_ids"].shape == (2, 23)


def test_plain_callable_tokenizer_returning_a_tensor() -> None:
    encoded = encode_texts(lambda texts: torch.ones(len(texts), 77, dtype=torch.long), ["a", "b"], 77)
    assert set(encoded) == {"input_ids"} and encoded["input_ids"].shape == (2, 77)


def test_out_of_range_and_unknown_labels_raise() -> None:
    with pytest.raises(ValueError, match=r"Label 4 .* outside 0\.\.2"):
        encode_labels([0, 4, 1], names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\['World'\] .* not among the class names"):
        encode_labels(["Sports", "World"], names=["Sports", "Business"])
    with pytest.raises(ValueError, match="negative: the split looks unlabelled"):
        encode_labels([0, -1])
    feature, ids = encode_labels(["2", "0"])
    assert feature.num_classes == 3 and ids == [2, 0]


def test_collator_rejects_labels_outside_num_classes(tokenizer: BertTokenizer) -> None:
    collate = TextClassificationCollator(tokenizer, num_classes=2)
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        collate([{"text": "a", "label": 2, "index": 0}])
    with pytest.raises(ValueError, match="negative"):
        TextClassificationCollator(tokenizer)([{"text": "a", "label": -1, "index": 0}])
    with pytest.raises(KeyError, match="IndexedDataset"):
        TextClassificationCollator(tokenizer)([{"text": "a", "label": 0}])


def test_to_class_labels_on_a_plain_dataset() -> None:
    dataset = to_class_labels(Dataset.from_dict({"text": ["x", "y"], "label": ["neg", "pos"]}))
    assert isinstance(dataset.features["label"], ClassLabel) and dataset["label"] == [0, 1]
    with pytest.raises(ValueError, match="not a ClassLabel"):
        label_names(Dataset.from_dict({"label": [0, 1]}))
