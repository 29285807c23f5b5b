"""Where the splits of a local data folder are: ``train.<ext>`` + ``validation.<ext>`` tables, or (images) the
imagefolder form ``train/<class>/<image>`` + ``validation/<class>/<image>``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import LocalDataError
from .images import IMAGE_EXTENSIONS

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
VALIDATION_NAMES = ("validation", "val", "test")
"""Names accepted for the held-out split, in order of preference."""

LAYOUT = """\
A data folder holds one table per split: train.<ext> and validation.<ext> (or val.<ext> / test.<ext>), <ext> one
of csv, tsv, jsonl, json, parquet (CSV/TSV with a header row). Columns are found by these names (or name them
with the column options):
  text       text|sentence|sentence1|review|content|document  +  label|labels|class|category|target|sentiment|intent
  audio      file|path|audio|filename|audio_path|audio_file    +  label...            (classification)
             file|path|audio|...                               +  transcript|transcription|text|sentence  (ASR)
  retrieval  image|image_path|file|path|filename|image_file    +  caption|text|sentence|description
  images     image|image_path|file|...                         +  label...
Media paths are relative to the table's folder, or absolute. Images may instead come as train/<class>/<image> with
validation/<class>/<image> (or val/, test/); a flat <class>/<image> folder needs an explicit validation fraction.
Passing the train file itself (e.g. my_data/train.csv, or accent_train.csv next to accent_val.csv) works too."""
"""The documented layout, for README and --help."""


@dataclass(frozen=True)
class SplitSource:
    """One split's source: a table file or an image class folder."""

    path: Path
    form: str
    """``table`` or ``imagefolder``."""


@dataclass(frozen=True)
class Layout:
    """The train split and the held-out split found for a path (None: none was found, see ``missing``)."""

    root: Path
    train: SplitSource
    validation: SplitSource | None
    missing: str = ""
    """Why there is no held-out split, and what would provide one."""


def find_layout(path: str | Path, task: str) -> Layout:
    """The splits of a data folder, or of a train table given directly. Raises LocalDataError, saying what the
    layout should be, for a missing path, an unreadable extension or an ambiguous folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise LocalDataError(f"Local data path {path} does not exist; check the path.")
    if path.is_file():
        return _layout_of_file(path.resolve())
    root = path.resolve()
    train = _one_table(root, "train")
    if train is not None:
        held_out = next(
            (t for t in (_one_table(root, name) for name in VALIDATION_NAMES) if t is not None), None
        )
        missing = (
            ""
            if held_out
            else f"{root} has {train.name} but no validation.<ext>, val.<ext> or test.<ext> next to it"
        )
        return Layout(root, SplitSource(train, "table"), held_out and SplitSource(held_out, "table"), missing)
    if task == "image":
        return _image_layout(root)
    raise LocalDataError(f"{root} holds no train.<ext> table (found {_listing(root)}).\n{LAYOUT}")


def _layout_of_file(path: Path) -> Layout:
    if path.suffix.lower() not in TABLE_EXTENSIONS:
        raise LocalDataError(
            f"Cannot read {path}: data tables must end in {', '.join(TABLE_EXTENSIONS)}.\n{LAYOUT}"
        )
    held_out = None
    if "train" in path.stem:
        for name in VALIDATION_NAMES:
            stem = path.stem.replace("train", name)
            candidates = [path.with_name(stem + path.suffix)] + [
                path.with_name(stem + ext) for ext in TABLE_EXTENSIONS if ext != path.suffix.lower()
            ]
            held_out = next((c for c in candidates if c.is_file()), None)
            if held_out is not None:
                break
    names = "/".join(path.stem.replace("train", n) for n in VALIDATION_NAMES) if "train" in path.stem else ""
    missing = (
        ""
        if held_out
        else f"no held-out table next to {path.name}"
        + (f" (looked for {names}.<ext>)" if names else " (name it train.<ext> and add validation.<ext>)")
    )
    return Layout(
        path.parent, SplitSource(path, "table"), held_out and SplitSource(held_out, "table"), missing
    )


def _one_table(root: Path, stem: str) -> Path | None:
    found = [root / f"{stem}{ext}" for ext in TABLE_EXTENSIONS if (root / f"{stem}{ext}").is_file()]
    if len(found) > 1:
        raise LocalDataError(
            f"{root} has several {stem} tables ({[p.name for p in found]}); keep one of them."
        )
    return found[0] if found else None


def _image_layout(root: Path) -> Layout:
    if (root / "train").is_dir():
        held_out = next((root / n for n in VALIDATION_NAMES if (root / n).is_dir()), None)
        missing = "" if held_out else f"{root} has train/ but no validation/, val/ or test/ folder"
        return Layout(
            root,
            SplitSource(root / "train", "imagefolder"),
            held_out and SplitSource(held_out, "imagefolder"),
            missing,
        )
    classes = [p for p in root.iterdir() if p.is_dir() and _holds_images(p)]
    if classes:
        return Layout(
            root,
            SplitSource(root, "imagefolder"),
            None,
            f"{root} is a flat <class>/<image> folder without train/ and validation/ split folders",
        )
    raise LocalDataError(
        f"{root} holds neither a train.<ext> table nor image class folders (found {_listing(root)}).\n{LAYOUT}"
    )


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


def _listing(root: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    return ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") if names else "nothing: it is empty"
