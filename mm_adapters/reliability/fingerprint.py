"""What run a checkpoint belongs to: a fingerprint of the data and the settings, stored in every checkpoint, so
that an automatic resume continues only the same run and never retrains or re-reports a finished one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from lightning.pytorch.callbacks import Callback

FINGERPRINT_KEY = "mm_adapters_run"
"""Where checkpoints hold the run fingerprint."""
RUN_INDEPENDENT = ("output_dir", "resume", "num_workers", "checkpoint_every_n_steps", "limit_val_batches")
"""Settings that do not change what a run computes (where it writes, how it loads): left out of the fingerprint."""


def _plain(value: Any) -> Any:
    """JSON-able (and ``torch.load(weights_only=True)``-able) form of a setting."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


@dataclass(frozen=True)
class RunFingerprint:
    """The data set (its fingerprint and a description for messages) and the settings of one training run."""

    data: str
    data_description: str
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        data: str,
        data_description: str,
        settings: Mapping[str, Any],
        ignore: Iterable[str] = RUN_INDEPENDENT,
    ) -> RunFingerprint:
        """A fingerprint from the data set's fingerprint and the run's settings, minus the ``ignore`` keys."""
        skipped = set(ignore)
        return cls(data, data_description, _plain({k: v for k, v in settings.items() if k not in skipped}))

    @property
    def digest(self) -> str:
        text = json.dumps({"data": self.data, "settings": self.settings}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self, finished: bool = False) -> dict[str, Any]:
        return {"data": self.data, "data_description": self.data_description, "settings": self.settings,
                "digest": self.digest, "finished": finished}  # fmt: skip

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> RunFingerprint:
        return cls(
            str(document["data"]), str(document.get("data_description", "")), dict(document["settings"])
        )

    def differences(self, other: RunFingerprint) -> list[str]:
        """What differs, in words: ``other`` (the saved run) first, this run second."""
        lines = []
        if self.data != other.data:
            lines.append(
                f"data {other.data_description} (fingerprint {other.data}) there, {self.data_description} "
                f"(fingerprint {self.data}) here"
            )
        for key in sorted(set(self.settings) | set(other.settings)):
            before, now = other.settings.get(key, "<unset>"), self.settings.get(key, "<unset>")
            if before != now:
                lines.append(f"{key} {before!r} there, {now!r} here")
        return lines


class RunFingerprintCallback(Callback):
    """Writes the run fingerprint into every checkpoint; :meth:`mark_finished` before the final checkpoint."""

    def __init__(self, fingerprint: RunFingerprint) -> None:
        self.fingerprint = fingerprint
        self.finished = False

    def mark_finished(self) -> None:
        """Checkpoints written from now on say the run completed its training."""
        self.finished = True

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[FINGERPRINT_KEY] = self.fingerprint.to_dict(finished=self.finished)


def saved_fingerprint(checkpoint: Mapping[str, Any]) -> tuple[RunFingerprint | None, bool]:
    """The fingerprint a checkpoint holds (None for one written without) and whether its run had finished."""
    document = checkpoint.get(FINGERPRINT_KEY)
    if not isinstance(document, Mapping) or "data" not in document or "settings" not in document:
        return None, False
    return RunFingerprint.from_dict(document), bool(document.get("finished", False))
