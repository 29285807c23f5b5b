"""Publishing an export folder on the Hugging Face hub (``mm-adapters push FOLDER REPO_ID`` is a thin layer on this).

The folder must hold something a registered format loads (an adapter, a fusion or an exported task); its model card
is made to load from the repo id (written first when the folder has none), then ``huggingface_hub.upload_folder``
uploads the files :func:`upload_plan` lists, in one commit.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import constants, create_repo, upload_folder
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from ..errors import AdapterLoadError
from .files import ADAPTER_CONFIG_FILE, MODEL_CARD_FILE, TASK_FILE, read_json_object
from .hub import parse_hub_id
from .model_card import point_card_at, write_model_card
from .registry import formats


class PushError(RuntimeError):
    """The folder cannot be pushed (not an export, offline, refused by the hub); the message says what to do."""


def upload_plan(folder: str | os.PathLike) -> list[str]:
    """The files :func:`push_folder` uploads: every file in ``folder`` but hidden ones (unfinished atomic writes)."""
    root = Path(folder)
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def check_pushable(folder: str | os.PathLike, repo_id: str) -> Path:
    """The folder, after checking that it is an export some format loads and that ``repo_id`` is a repo id."""
    root = Path(folder)
    if not root.is_dir():
        raise PushError(f"{root} is not a folder; pass the folder export_adapter (or save_adapter) wrote.")
    if parse_hub_id(repo_id) is None or "@" in repo_id:
        raise PushError(f"{repo_id!r} is not a hub repo id; pass it as 'user-or-org/name'.")
    if not any(f.detect(root) for kind in ("adapter", "fusion", "task") for f in formats(kind)):
        files = upload_plan(root)
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5:,} more" if len(files) > 5 else "")
        raise PushError(
            f"{root} holds no adapter, fusion or exported task ({shown or 'it is empty'}); "
            "pass the folder export_adapter or save_adapter wrote."
        )
    return root


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload adapter with mm_adapters",
    token: str | None = None,
) -> str:
    """Upload the export ``folder`` to the hub repo ``repo_id`` (created if needed); returns the commit URL."""
    root = check_pushable(folder, repo_id)
    if constants.HF_HUB_OFFLINE:
        raise PushError(
            f"HF_HUB_OFFLINE is set, so {root} cannot be pushed to {repo_id!r}; unset it on a machine with network "
            "access (and log in with `hf auth login`)."
        )
    if not point_card_at(root, repo_id):
        write_model_card(root, backbone=_backbone_of(root))
        point_card_at(root, repo_id)
    try:
        create_repo(repo_id, private=private, exist_ok=True, token=token)
        commit = upload_folder(
            repo_id=repo_id, folder_path=root, allow_patterns=upload_plan(root), revision=revision,
            commit_message=commit_message, token=token,
        )  # fmt: skip
    except (OfflineModeIsEnabled, HfHubHTTPError, OSError) as error:
        raise PushError(f"Pushing {root} to {repo_id!r} failed: {error}") from error
    return str(getattr(commit, "commit_url", commit))


def _backbone_of(root: Path) -> str:
    """What the folder says it was trained on: ``task.json``'s backbone name, else the family it records."""
    try:
        if (root / TASK_FILE).is_file():
            return str(read_json_object(root / TASK_FILE, "task")["backbone"]["name"])
        if (root / ADAPTER_CONFIG_FILE).is_file():
            document = read_json_object(root / ADAPTER_CONFIG_FILE, "adapter")
            backbone = document.get("backbone")
            return (
                str(backbone.get("family")) if isinstance(backbone, dict) else str(document.get("model_name"))
            )
    except (AdapterLoadError, KeyError, TypeError):
        pass
    return "the backbone it was trained on"


__all__ = ["MODEL_CARD_FILE", "PushError", "check_pushable", "push_folder", "upload_plan"]
