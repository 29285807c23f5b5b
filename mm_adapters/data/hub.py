"""One entry point for a Hugging Face Hub dataset name or a local folder/file, failing fast when offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from .images import IMAGE_EXTENSIONS, load_image_folder

FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


class DatasetUnavailableError(RuntimeError):
    """A hub dataset could not be loaded (offline and not cached, unknown name, unknown split ...)."""


def _is_offline() -> bool:
    return bool(datasets.config.HF_HUB_OFFLINE)


def _load_local(path: Path, split: str, **load_kwargs: Any) -> Dataset:
    if path.is_file():
        builder = FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise ValueError(f"Cannot load {path}: supported files are {sorted(FILE_BUILDERS)}.")
        if path.suffix.lower() == ".tsv":
            load_kwargs.setdefault("delimiter", "\t")
        return load_dataset(builder, data_files=str(path), split="train", **load_kwargs)
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        loaded = load_from_disk(str(path))
        return loaded[split] if isinstance(loaded, DatasetDict) else loaded
    if any(file.suffix.lower() in IMAGE_EXTENSIONS for file in path.rglob("*")):
        return load_image_folder(path, split if (path / split).is_dir() else None, **load_kwargs)
    if not any(file.is_file() for file in path.rglob("*")):
        raise ValueError(
            f"Dataset folder {path} is empty. Put the data there (an image folder [<split>/]<class>/<image>, "
            f"a {'/'.join(sorted(FILE_BUILDERS))} file per split, or a save_to_disk folder), or pass another path."
        )
    return load_dataset(str(path), split=split, **load_kwargs)


def load_hub_or_local(
    name_or_path: str | Path, split: str, config_name: str | None = None, **load_kwargs: Any
) -> Dataset:
    """A Dataset from a local path or a hub name (e.g. "cifar10", or "nyu-mll/glue" with config "sst2").

    Local: a `save_to_disk` folder, an image folder (`dir[/split]/<class>/*`), any folder `load_dataset` reads,
    or a .csv/.tsv (with header)/.json/.jsonl/.parquet file (one split: `split` is ignored). Hub failures,
    e.g. with HF_HUB_OFFLINE=1 and nothing cached, raise DatasetUnavailableError at once.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return _load_local(path, split, **load_kwargs)
    if str(name_or_path).startswith((".", "/", "~")) or path.suffix.lower() in FILE_BUILDERS:
        raise ValueError(f"Local dataset path {path} does not exist; check the path.")
    try:
        return load_dataset(str(name_or_path), config_name, split=split, **load_kwargs)
    except Exception as error:
        hint = (
            f"There is no local folder or file {path.resolve()} either, and HF_HUB_OFFLINE=1 is set and the dataset "
            "is not in the local cache: check the path, download the dataset once with network access, or pass a "
            "local folder or file (the bundled demo sets are in mm_adapters.data.bundled)."
            if _is_offline()
            else "Check the name, config and split, your network, or pass a local folder or file instead."
        )
        raise DatasetUnavailableError(
            f"Could not load hub dataset {name_or_path!r} (config {config_name!r}, split {split!r}): "
            f"{type(error).__name__}: {error}. {hint}"
        ) from error
