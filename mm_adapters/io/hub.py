"""Folders from the Hugging Face hub: ``"org/name"`` or ``"org/name@revision"`` wherever a folder is accepted.

:func:`resolve_folder` turns what a user passed into a local folder: an existing path as it is, else a hub id through
``huggingface_hub.snapshot_download`` (only the files the formats of that kind load; the cache and ``HF_HUB_OFFLINE``
as the hub library handles them). Pickled ``.bin`` weights are fetched only when a repo has no safetensors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

from ..errors import AdapterLoadError
from .registry import formats, hub_files

_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(?:@(?P<revision>[\w.\-/]+))?$")


def parse_hub_id(value: str) -> tuple[str, str | None] | None:
    """``"org/name@rev"`` -> ``("org/name", "rev")``; None when ``value`` is not shaped like a hub id."""
    match = _HUB_ID.match(value)
    if match is None or ".." in value or value.endswith((".json", ".safetensors", ".bin")):
        return None
    return match["repo"], match["revision"]


def resolve_folder(path_or_id: str | os.PathLike, kind: str = "adapter") -> Path:
    """The local folder for ``path_or_id``: an existing path, else the hub snapshot of a hub id holding the files the
    ``kind`` formats (``"adapter"``, ``"fusion"``, ``"head"``, ``"task"``) load. A path object, or a string that is not
    shaped like a hub id, comes back as a path (its loader then says what is missing)."""
    path = Path(path_or_id)
    if not isinstance(path_or_id, str) or path.exists():
        return path
    parsed = parse_hub_id(path_or_id)
    if parsed is None:
        return path
    repo_id, revision = parsed
    patterns = hub_files(kind)
    safe = [p for p in patterns if not p.endswith(".bin")]
    folder = _download(path_or_id, repo_id, revision, safe)
    if _recognised(folder, kind) or safe == list(patterns):
        return folder
    return _download(path_or_id, repo_id, revision, list(patterns))  # a repo with pickled weights only


def _recognised(folder: Path, kind: str) -> bool:
    return folder.is_dir() and any(file_format.detect(folder) for file_format in formats(kind))


def _download(given: str, repo_id: str, revision: str | None, patterns: list[str]) -> Path:
    cache = constants.HF_HUB_CACHE
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except LocalEntryNotFoundError as error:
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        raise AdapterLoadError(
            f"{given!r} is not a local folder, and the hub repo {repo_id!r}"
            f"{'' if revision is None else f' at revision {revision!r}'} is not in the cache {cache}{offline}: "
            "download it once with network access, or pass the folder it is in."
        ) from error
    except RepositoryNotFoundError as error:
        raise AdapterLoadError(
            f"{given!r} is not a local folder, and the hub has no repo {repo_id!r} (or it is private: log in "
            "with `hf auth login`)."
        ) from error
    except HfHubHTTPError as error:
        raise AdapterLoadError(f"Downloading {repo_id!r} from the hub failed: {error}") from error
