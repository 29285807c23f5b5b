"""AdapterDataModule (seeded shuffling, row indices) and load_hub_or_local (local paths, fast offline failure)."""

import time
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import torch
from datasets import Dataset, DatasetDict
from PIL import Image

from mm_adapters.data import (
    AdapterDataModule,
    DatasetUnavailableError,
    IndexedDataset,
    label_names,
    load_hub_or_local,
)


def collate_numbers(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "values": torch.tensor([row["value"] for row in rows]),
        "index": torch.tensor([row["index"] for row in rows]),
    }


def epoch_indices(loader: torch.utils.data.DataLoader) -> list[int]:
    return [i for batch in loader for i in batch["index"].tolist()]


@pytest.fixture
def numbers() -> Dataset:
    return Dataset.from_dict({"value": [10 * i for i in range(20)]})


def test_indexed_dataset_adds_row_index(numbers: Dataset) -> None:
    assert IndexedDataset(numbers)[3] == {"value": 30, "index": 3} and len(IndexedDataset(numbers)) == 20


def test_train_order_is_seeded_and_val_order_is_fixed(numbers: Dataset) -> None:
    module = AdapterDataModule(numbers, numbers.select(range(7)), collate_numbers, batch_size=6, seed=1)
    first = epoch_indices(module.train_dataloader())
    assert sorted(first) != first and sorted(first) == list(range(20))
    assert first == epoch_indices(
        AdapterDataModule(numbers, numbers, collate_numbers, 6, seed=1).train_dataloader()
    )
    assert first != epoch_indices(
        AdapterDataModule(numbers, numbers, collate_numbers, 6, seed=2).train_dataloader()
    )
    batch = next(iter(module.train_dataloader()))
    assert batch["values"].tolist() == [10 * i for i in batch["index"].tolist()]
    assert epoch_indices(module.val_dataloader()) == list(range(7))
    with pytest.raises(ValueError, match="No test dataset"):
        module.test_dataloader()


def test_empty_training_set_is_rejected(numbers: Dataset) -> None:
    with pytest.raises(ValueError, match="training dataset is empty"):
        AdapterDataModule(numbers.select([]), numbers, collate_numbers)


def test_hub_name_fails_fast_when_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(
        DatasetUnavailableError, match="HF_HUB_OFFLINE=1 is set and the dataset is not in the local"
    ):
        load_hub_or_local("nyu-mll/glue", "validation", "sst2", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 10


def test_local_paths(tmp_path: Path) -> None:
    for split, name in (("train", "cat"), ("train", "dog"), ("test", "cat"), ("test", "dog")):
        (tmp_path / "images" / split / name).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "images" / split / name / "x.png")
    images = load_hub_or_local(tmp_path / "images", "test", cache_dir=str(tmp_path / "cache"))
    assert len(images) == 2 and label_names(images) == ["cat", "dog"]
    DatasetDict({"validation": Dataset.from_dict({"a": [1, 2]})}).save_to_disk(tmp_path / "saved")
    assert load_hub_or_local(tmp_path / "saved", "validation")["a"] == [1, 2]
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nok\t1\n")
    assert (
        load_hub_or_local(tmp_path / "t.tsv", "train", cache_dir=str(tmp_path / "cache"))[0]["sentence"]
        == "ok"
    )
    with pytest.raises(ValueError, match="does not exist"):
        load_hub_or_local("./no/such/folder", "train")
