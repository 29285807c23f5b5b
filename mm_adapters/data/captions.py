"""Image-caption data for retrieval: COCO caption json or a CSV -> Dataset of (image_path, caption, image_id)."""

from __future__ import annotations

import json
from pathlib import Path

from datasets import Dataset, Features, Value

from .tables import read_table

CAPTION_FEATURES = Features(
    {"image_path": Value("string"), "caption": Value("string"), "image_id": Value("int64")}
)


def _check_files_exist(paths: list[str], source: str | Path) -> None:
    missing = sorted({path for path in paths if not Path(path).is_file()})
    if missing:
        raise ValueError(f"{len(missing)} images listed in {source} do not exist, e.g. {missing[:3]}.")


def load_coco_captions(images_dir: str | Path, captions_json: str | Path) -> Dataset:
    """COCO caption json (`images` + `annotations`) and its images folder -> one row per caption."""
    images_dir, captions_json = Path(images_dir), Path(captions_json)
    if not captions_json.is_file():
        raise ValueError(f"Caption file {captions_json} not found; pass a COCO captions_*.json file.")
    coco = json.loads(captions_json.read_text(encoding="utf-8"))
    if not isinstance(coco, dict) or "images" not in coco or "annotations" not in coco:
        raise ValueError(f"{captions_json} is not a COCO caption file: it needs 'images' and 'annotations'.")
    files = {image["id"]: str((images_dir / image["file_name"]).resolve()) for image in coco["images"]}
    unknown = sorted({note["image_id"] for note in coco["annotations"]} - files.keys())
    if unknown:
        raise ValueError(
            f"{captions_json} has captions for image ids {unknown[:5]} missing from its 'images'."
        )
    rows = {
        "image_path": [files[note["image_id"]] for note in coco["annotations"]],
        "caption": [note["caption"].strip() for note in coco["annotations"]],
        "image_id": [int(note["image_id"]) for note in coco["annotations"]],
    }
    if not rows["caption"]:
        raise ValueError(f"{captions_json} has no captions; retrieval needs at least one.")
    _check_files_exist(rows["image_path"], captions_json)
    return Dataset.from_dict(rows, features=CAPTION_FEATURES)


def load_caption_csv(
    csv_path: str | Path, image_column: str | int | None = None, caption_column: str | int | None = None
) -> Dataset:
    """CSV of (image path, caption) rows -> one row per caption; rows with the same image share an image_id.
    Image paths are resolved against the CSV's folder."""
    table = read_table(csv_path)
    image_key = (
        image_column
        if image_column is not None
        else next((name for name in ("image_path", "image", "path", "file") if name in table.columns), 0)
    )
    caption_key = (
        caption_column if caption_column is not None else ("caption" if "caption" in table.columns else 1)
    )
    folder = Path(csv_path).resolve().parent
    paths = [str((folder / value).resolve()) for value in table.column(image_key)]
    _check_files_exist(paths, csv_path)
    ids: dict[str, int] = {}
    image_ids = [ids.setdefault(path, len(ids)) for path in paths]
    rows = {"image_path": paths, "caption": table.column(caption_key), "image_id": image_ids}
    return Dataset.from_dict(rows, features=CAPTION_FEATURES)
