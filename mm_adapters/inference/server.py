"""The HTTP server of ``mm-adapters serve``: FastAPI routes over an :class:`InferenceSession` and a
:class:`DynamicBatcher` (OpenAPI docs at ``/docs``).

    POST   /predict        {"task": "sst2" | ["sst2", "agnews"] | omitted, "text": "..."} or "image" / "audio"
                           (base64), or a multipart upload "file" (+ "task", "top_k" form fields)
    GET    /tasks          names, task types, inputs and class names
    POST   /tasks          {"folder": "runs/x/adapter"} adds a task while serving
    DELETE /tasks/{name}   removes one, after the requests already accepted for it are answered
    GET    /health

Every bad request is answered 4xx with ``{"error": ..., "field": ...}`` before it reaches a batch.

Why FastAPI + uvicorn and not LitServe (checked in litserve 0.2.19): LitServe's batched loop answers every request of
a dynamic batch with the HTTPException of any one of them (one bad request would fail its neighbours), and it keeps
the model in worker processes, so a task added at run time would reach one worker only.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .batcher import DynamicBatcher
from .exports import UsageError
from .requests import DEFAULT_MAX_AUDIO_SECONDS, RequestError, parse_request
from .session import InferenceSession
from .tasks import task_summary

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class PredictBody(BaseModel):
    """A JSON prediction request: one input (text, or base64 image / audio) and the tasks to ask."""

    task: str | list[str] | None = Field(
        None, description="A task name, a list, or omitted for every task that reads the input."
    )
    text: str | None = Field(None, description="Text to classify.")
    image: str | None = Field(None, description="Base64 image bytes (PNG, JPEG, ...).")
    audio: str | None = Field(None, description="Base64 audio bytes (WAV, FLAC, OGG).")
    top_k: int = Field(1, ge=1, le=100, description="How many best classes per task.")
    captions: list[str] | None = Field(None, description="Retrieval on an image: captions to rank.")


class AddTaskBody(BaseModel):
    folder: str = Field(..., description="An exported task folder (export_adapter's output).")
    backbone: str | None = Field(None, description="The backbone, for an export without task.json.")


_PREDICT_DOC = {
    "requestBody": {
        "content": {
            "application/json": {"schema": PredictBody.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "task": {"type": "string", "description": "A task name or comma-separated names."},
                        "top_k": {"type": "integer"},
                    },
                }
            },
        }
    }
}


def create_app(
    session: InferenceSession,
    max_batch_size: int = 32,
    batch_timeout: float = 0.005,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS,
) -> FastAPI:
    """The server app; its batcher starts and stops with the app (``app.state.batcher``)."""
    batcher = DynamicBatcher(session, max_batch_size, batch_timeout)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        batcher.start()
        yield
        batcher.stop()

    app = FastAPI(title="mm-adapters serve", description=__doc__, lifespan=lifespan)
    app.state.batcher, app.state.session = batcher, session

    @app.exception_handler(RequestError)
    async def bad_request(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, error: RequestValidationError) -> JSONResponse:
        """FastAPI's own check of a JSON body (POST /tasks): answered in the same shape as every other 4xx."""
        first = error.errors()[0] if error.errors() else {}
        where = [str(part) for part in first.get("loc", ()) if part != "body"]
        if first.get("type") == "json_invalid":
            return JSONResponse({"error": "The body is not valid JSON.", "field": "body"}, status_code=400)
        field = ".".join(where) or "body"
        return JSONResponse(
            {"error": f"{field}: {first.get('msg', 'invalid')}.", "field": field}, status_code=422
        )

    @app.exception_handler(Exception)
    async def failure(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {error}", "field": ""}, status_code=500)

    @app.post("/predict", openapi_extra=_PREDICT_DOC)
    async def predict(request: Request) -> dict[str, Any]:
        """Each asked task's answer for one input: label, probability and top_k; a transcript; or an embedding."""
        fields, upload = await _read_request(request, max_body_bytes)
        parsed = await run_in_threadpool(parse_request, session, fields, upload, max_audio_seconds)
        try:
            future = batcher.submit(parsed)
        except KeyError as name:
            raise RequestError(404, "task", f"Task {name.args[0]!r} is being removed.") from None
        try:
            answers = await asyncio.wrap_future(future)
        except UsageError as error:
            raise RequestError(422, error.field or "input", str(error)) from None
        return {"predictions": answers}

    @app.get("/tasks")
    async def tasks() -> dict[str, Any]:
        """The loaded tasks: name, task type, inputs, backbone and class names."""
        loaded = [
            task_summary(task) for name, task in list(session.tasks.items()) if not batcher.is_retiring(name)
        ]
        return {"tasks": loaded}

    @app.post("/tasks", status_code=201)
    async def add_task(body: AddTaskBody) -> dict[str, Any]:
        """Load another exported task folder while serving."""
        try:
            task = await run_in_threadpool(session.add, body.folder, body.backbone)
        except UsageError as error:
            status = 409 if error.field == "name" else 422
            raise RequestError(
                status, "folder" if error.field == "export" else error.field, str(error)
            ) from None
        batcher.forget(task.name)
        return task_summary(task)

    @app.delete("/tasks/{name}")
    async def remove_task(name: str) -> dict[str, str]:
        """Remove a task; requests already accepted for it are answered first."""
        if name not in session.tasks or batcher.is_retiring(name):
            raise RequestError(404, "name", f"Unknown task {name!r}; GET /tasks lists the loaded ones.")
        await run_in_threadpool(batcher.retire, name)
        await run_in_threadpool(session.remove, name)
        batcher.forget(name)
        return {"removed": name}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": len(session.tasks), "batches": batcher.batches}

    return app


async def _read_request(request: Request, max_body_bytes: int) -> tuple[dict[str, Any], tuple | None]:
    """The JSON body or the multipart form (fields, and the upload as (filename, content type, bytes))."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise RequestError(
            413, "body", f"The request is {int(declared):,} bytes; the limit is {max_body_bytes:,}."
        )
    body = await request.body()
    if len(body) > max_body_bytes:
        raise RequestError(
            413, "body", f"The request is {len(body):,} bytes; the limit is {max_body_bytes:,}."
        )
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        fields: dict[str, Any] = {}
        upload = None
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                upload = (value.filename or "", value.content_type or "", await value.read())
            elif key == "task":
                fields.setdefault("task", []).extend(n.strip() for n in str(value).split(",") if n.strip())
            else:
                fields[key] = value
        return fields, upload
    try:
        fields = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError(
            400, "body", "The body is not valid JSON; send a JSON object or a multipart upload."
        ) from None
    if not isinstance(fields, dict):
        raise RequestError(
            400, "body", 'The body must be a JSON object, e.g. {"text": "...", "task": "sst2"}.'
        )
    return fields, None
