"""Is a checkpoint here, or can it be fetched? Answers without downloading anything."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Sequence

HUB_URL = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}


class BackboneNotFoundError(ValueError):
    """The backbone name or path points at nothing that can be loaded here."""


def offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) forbids downloads."""
    return any(os.environ.get(var, "").upper() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when downloads are allowed and huggingface.co answers within ``timeout`` seconds."""
    if offline():
        return False
    try:
        urllib.request.urlopen(urllib.request.Request(HUB_URL, method="HEAD"), timeout=timeout).close()
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def cached_file(repo_id: str, filenames: Sequence[str]) -> str | None:
    """Local path of the first of ``filenames`` in the Hugging Face cache for ``repo_id``, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        try:
            path = try_to_load_from_cache(repo_id, filename)
        except ValueError:  # not a valid repo id
            return None
        if isinstance(path, str):
            return path
    return None


def require_cached_when_offline(repo_id: str, filenames: Sequence[str], what: str) -> None:
    """Fail at once, with what to do, when offline and ``repo_id`` is not cached (instead of a long retry)."""
    if offline() and cached_file(repo_id, filenames) is None:
        raise BackboneNotFoundError(
            f"{what} needs {repo_id!r} from the Hugging Face Hub, which is not in the local cache "
            f"({_cache_dir()}), and HF_HUB_OFFLINE=1 forbids downloading it. Download it once with network access "
            f"(`hf download {repo_id}`, or unset HF_HUB_OFFLINE), pass a local folder saved with save_pretrained, "
            "or use a demo backbone (mm_adapters.backbones.DEMO_BACKBONES)."
        )


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
