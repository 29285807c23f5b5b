"""Retrieval data: COCO caption json and caption CSVs, collated with shared image ids."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import BertTokenizer

from mm_adapters.data import ImageTransform, RetrievalCollator, load_caption_csv, load_coco_captions

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "dog", "on", "mat"]


def write_coco(folder: Path, annotations: list[dict]) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (30, 20), (255, 0, 0)).save(folder / "images" / "1.jpg")
    Image.new("L", (9, 40), 128).save(folder / "images" / "2.jpg")
    coco = {
        "images": [{"id": 11, "file_name": "1.jpg"}, {"id": 22, "file_name": "2.jpg"}],
        "annotations": annotations,
    }
    (folder / "captions.json").write_text(json.dumps(coco))
    return folder / "captions.json"


def test_coco_captions_collate_to_retrieval_contract(tmp_path: Path) -> None:
    notes = [
        {"id": 1, "image_id": 11, "caption": "a cat "},
        {"id": 2, "image_id": 22, "caption": "a dog on a mat"},
        {"id": 3, "image_id": 11, "caption": "cat on mat"},
    ]
    dataset = load_coco_captions(tmp_path / "images", write_coco(tmp_path, notes))
    assert dataset.column_names == ["image_path", "caption", "image_id"]
    assert dataset["image_id"] == [11, 22, 11] and dataset[0]["caption"] == "a cat"
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(WORDS)})
    collate = RetrievalCollator(ImageTransform(16), tokenizer, max_length=16)
    batch = collate([{**dataset[i], "index": i} for i in range(3)])
    assert set(batch) == {"pixel_values", "input_ids", "attention_mask", "image_ids", "index"}
    assert batch["pixel_values"].shape == (3, 3, 16, 16) and batch["pixel_values"].dtype == torch.float32
    assert batch["input_ids"].shape == (3, 7) and batch["attention_mask"].dtype == torch.long
    assert batch["image_ids"].tolist() == [11, 22, 11] and batch["image_ids"].dtype == torch.long
    torch.testing.assert_close(batch["pixel_values"][0], batch["pixel_values"][2])


def test_coco_errors_name_the_problem(tmp_path: Path) -> None:
    bad_id = write_coco(tmp_path, [{"id": 1, "image_id": 99, "caption": "a cat"}])
    with pytest.raises(ValueError, match=r"image ids \[99\] missing"):
        load_coco_captions(tmp_path / "images", bad_id)
    (tmp_path / "images" / "2.jpg").unlink()
    missing = write_coco(tmp_path / "other", [{"id": 1, "image_id": 22, "caption": "a dog"}])
    with pytest.raises(ValueError, match="do not exist"):
        load_coco_captions(tmp_path / "images", missing)


def test_caption_csv_shares_image_ids(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        Image.new("RGBA", (5, 5)).save(tmp_path / name)
    (tmp_path / "captions.csv").write_text('image,caption\na.png,"a cat, on a mat"\nb.png,a dog\na.png,cat\n')
    dataset = load_caption_csv(tmp_path / "captions.csv")
    assert dataset["image_id"] == [0, 1, 0] and dataset[0]["caption"] == "a cat, on a mat"
    assert dataset[1]["image_path"] == str((tmp_path / "b.png").resolve())
