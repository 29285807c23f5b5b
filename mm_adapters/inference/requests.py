"""One ``POST /predict`` request, checked before it is queued: which tasks, which input, decoded.

A request names ``task`` (one name, a list, or nothing for every task that reads its input) and one input: ``text``, ``image`` or
``audio`` (base64 in JSON, or an uploaded file). Every problem raises :class:`RequestError` with the HTTP status
and the field at fault, so a bad request is answered alone and never reaches a batch.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data.audio import read_audio
from ..data.images import to_rgb
from .batches import InputItem
from .exports import UsageError
from .session import InferenceSession

INPUT_FIELDS = ("text", "image", "audio")
DEFAULT_MAX_AUDIO_SECONDS = 30.0
CHECK_RATE = 16000
"""Clips are decoded once at this rate to check them (the rate of every audio backbone here; collating resamples)."""


class RequestError(ValueError):
    """A bad request: ``status`` (4xx), the ``field`` at fault and a message saying what to send instead."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field = status, field

    def body(self) -> dict[str, str]:
        return {"error": str(self), "field": self.field}


@dataclass
class PredictRequest:
    """A checked request: the decoded input, the tasks it asks for, and how many top answers."""

    item: InputItem
    tasks: list[str]
    top_k: int = 1
    candidates: tuple[str, ...] | None = None


def parse_request(
    session: InferenceSession,
    fields: dict[str, Any],
    upload: tuple[str, str, bytes] | None = None,
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
) -> PredictRequest:
    """Check ``fields`` (the JSON body or the form fields) and ``upload`` (``(filename, content type, bytes)``)."""
    tasks = _tasks(session, fields.get("task"))
    top_k = _top_k(fields.get("top_k", 1))
    given = [name for name in INPUT_FIELDS if fields.get(name) not in (None, "")]
    if upload is not None:
        given.append(_upload_kind(upload))
    if len(given) != 1:
        if not given and any(isinstance(fields.get(name), str) for name in INPUT_FIELDS):
            raise RequestError(422, "text", "text is empty; send the text to classify.")
        raise RequestError(
            422,
            "input",
            f"Send exactly one input (text, image or audio, or one uploaded file); got {given or 'none'}.",
        )
    modality = given[0]
    if fields.get("task") in (None, "", []):  # every task that reads this kind of input
        tasks = [
            name for name in tasks if modality in (session.tasks[name].export.inputs or (modality,))
        ] or tasks
    if modality == "text":
        value = fields["text"]
        if not isinstance(value, str) or not value.strip():
            raise RequestError(422, "text", "text must be a non-empty string.")
        raw: Any = value
    else:
        data = upload[2] if upload is not None else _base64(fields[modality], modality)
        raw = (
            _image(data)
            if modality == "image"
            else _audio(data, audio_limit(session, tasks, max_audio_seconds))
        )
    candidates = _candidates(fields.get("captions"))
    try:
        session.check_inputs(tasks, modality)
    except UsageError as error:
        raise RequestError(422, modality, str(error)) from None
    return PredictRequest(InputItem(modality, modality, raw), tasks, top_k, candidates)


def _tasks(session: InferenceSession, task: Any) -> list[str]:
    if task in (None, "", []):
        names = list(session.tasks)
    elif isinstance(task, str):
        names = [name.strip() for name in task.split(",") if name.strip()]
    elif isinstance(task, Sequence) and all(isinstance(name, str) for name in task):
        names = list(task)
    else:
        raise RequestError(422, "task", "task is one task name, a list of names, or omitted for every task.")
    unknown = [name for name in names if name not in session.tasks]
    if unknown:
        raise RequestError(
            404, "task", f"Unknown task {unknown[0]!r}; GET /tasks lists {sorted(session.tasks)}."
        )
    if not names:
        raise RequestError(404, "task", "No task is loaded; add one with POST /tasks.")
    return list(dict.fromkeys(names))


def _top_k(value: Any) -> int:
    try:
        top_k = int(value)
    except (TypeError, ValueError):
        raise RequestError(422, "top_k", f"top_k must be a whole number, got {value!r}.") from None
    if not 1 <= top_k <= 100:
        raise RequestError(422, "top_k", f"top_k must be between 1 and 100, got {top_k}.")
    return top_k


def _candidates(captions: Any) -> tuple[str, ...] | None:
    if captions is None:
        return None
    if (
        not isinstance(captions, list)
        or not captions
        or not all(isinstance(c, str) and c.strip() for c in captions)
    ):
        raise RequestError(422, "captions", "captions is a non-empty list of non-empty strings to rank.")
    return tuple(captions)


def _upload_kind(upload: tuple[str, str, bytes]) -> str:
    filename, content_type, _ = upload
    kind = (content_type or "").split("/")[0]
    if kind in ("image", "audio"):
        return kind
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in {"png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"}:
        return "image"
    if suffix in {"wav", "flac", "ogg", "mp3", "aiff", "aif"}:
        return "audio"
    raise RequestError(422, "file", f"Cannot tell whether {filename!r} ({content_type}) is an image or audio; "
                       "send it with an image/* or audio/* content type.")  # fmt: skip


def _base64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise RequestError(422, field, f"{field} must be a base64 string of the file's bytes.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(422, field, f"{field} is not valid base64.") from None


def _image(data: bytes):
    try:
        return to_rgb({"bytes": data})
    except (ValueError, OSError):
        raise RequestError(
            422, "image", "image could not be decoded; send PNG, JPEG, WebP, GIF, BMP or TIFF bytes."
        ) from None


def _audio(data: bytes, max_seconds: float) -> dict[str, Any]:
    try:
        waveform = read_audio({"bytes": data, "path": None}, CHECK_RATE, normalize=False)
    except (ValueError, RuntimeError, TypeError):
        raise RequestError(422, "audio", "audio could not be decoded; send WAV, FLAC or OGG bytes.") from None
    seconds = waveform.numel() / CHECK_RATE
    if seconds > max_seconds:
        raise RequestError(413, "audio", f"audio is {seconds:.1f} s long; the limit is {max_seconds:g} s "
                           "(the backbone's window). Cut it into shorter clips.")  # fmt: skip
    return {"array": waveform.numpy(), "sampling_rate": CHECK_RATE}


def audio_limit(session: InferenceSession, tasks: Sequence[str], max_seconds: float) -> float:
    """The longest clip the tasks take: the server's limit, or a shorter window of their backbones (Whisper)."""
    limit = max_seconds
    for name in tasks:
        backbone = session.backbones[session.tasks[name].export.backbone]
        window = getattr(backbone, "window_samples", None)
        if window and backbone.sample_rate:
            limit = min(limit, window / backbone.sample_rate)
    return limit


def image_bytes(image) -> bytes:
    """PNG bytes of a PIL image (for clients and tests)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
