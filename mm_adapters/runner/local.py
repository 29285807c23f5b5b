"""A recipe's own-data path: ``--data FOLDER`` through :func:`mm_adapters.data.load_local_data`, with the column,
split and worker options of the command line, and library messages re-worded with the command line's flags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..data import LocalData, load_local_data
from ..data.local_columns import COLUMN_ARGUMENTS
from ..data.local_layout import TABLE_EXTENSIONS

BUNDLED_PREFIX = "bundled"
SAVED_DATASET_FILES = ("dataset_dict.json", "dataset_info.json")
"""A folder holding one of these was written by ``datasets``' ``save_to_disk``."""


def is_local(data: str | None) -> bool:
    """Whether ``--data`` names a local folder or table in the local-data contract (an existing path, or one
    written as a path) rather than a bundled set (``bundled...``), a Hub data set id or a ``save_to_disk`` folder
    (those go through :func:`mm_adapters.data.load_hub_or_local`)."""
    if not data or str(data).startswith(BUNDLED_PREFIX):
        return False
    text = str(data)
    path = Path(text).expanduser()
    if path.exists():
        return not any((path / name).is_file() for name in SAVED_DATASET_FILES)
    return text.startswith((".", "/", "~")) or Path(text).suffix.lower() in TABLE_EXTENSIONS


def load_local(
    config: Any,
    task: str,
    *,
    sample_rate: int | None = None,
    min_samples: int = 1,
    data: str | Path | None = None,
) -> LocalData:
    """Load and check ``data`` (default ``config.data``) for ``task`` with the config's column options,
    ``val_fraction``, ``seed`` and ``num_workers``, and print what was used."""
    columns = {
        name: getattr(config, name) for name in COLUMN_ARGUMENTS if getattr(config, name, None) is not None
    }
    loaded = load_local_data(
        data if data is not None else config.data,
        task,
        **columns,
        val_fraction=getattr(config, "val_fraction", None),
        seed=config.seed,
        num_workers=config.num_workers,
        sample_rate=sample_rate,
        min_samples=min_samples,
    )
    print(loaded.summary(), flush=True)
    return loaded


def check_not_local_only(config: Any) -> None:
    """``--val-fraction`` and column options describe local data; with bundled or Hub data they would be ignored."""
    given = [name for name in ("val_fraction", *COLUMN_ARGUMENTS) if getattr(config, name, None) is not None]
    if given and not is_local(config.data):
        flags = ", ".join(flag(name) for name in given)
        raise ValueError(f"{flags} describe a local data folder, but --data is {config.data!r}; drop them.")


def flag(name: str) -> str:
    """The command-line flag of a config field."""
    return "--" + name.replace("_", "-")


def command_line_words(message: str, config: Any) -> str:
    """A library message with the keyword arguments it names (``val_fraction``, ``label_column='<column>'``,
    ``resume='none'``, ``output_dir``) written as this command line's flags; names the config lacks stay."""
    fields = set(getattr(config, "__dataclass_fields__", {}))

    def replace(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if name not in fields:
            return match.group(0)
        return flag(name) + (f" {value}" if value else "")

    message = re.sub(r"(?<![-\w/])([a-z]+_[a-z_]+)(?:='([^']*)')?(?![\w(/])", replace, message)
    return re.sub(r"(?<![-\w])(resume)='([^']*)'", replace, message)
