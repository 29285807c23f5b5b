"""``mm-adapters serve EXPORT|FOLDER ... [--port 8000] [--host 127.0.0.1]``: exported tasks over HTTP.

    mm-adapters serve runs/demos/vit_cifar/adapter                  # one task
    mm-adapters serve adapters/                                      # every export folder under adapters/
    curl -s localhost:8000/predict -F file=@cat.png                  # every task's answer for one image
    curl -s localhost:8000/predict -H 'content-type: application/json' -d '{"task": "sst2", "text": "great"}'

Requests that arrive together are answered as one mixed-task batch. ``GET /tasks`` lists the tasks,
``POST /tasks {"folder": ...}`` adds one and ``DELETE /tasks/NAME`` removes one while serving; ``GET /docs`` shows
the API. Built on FastAPI and uvicorn rather than LitServe: LitServe answers a whole dynamic batch with the error
of any one request in it, and keeps the model in worker processes that a task added at run time would not reach.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..io import ADAPTER_CONFIG_FILE as CONFIG_FILE
from ..io import HEAD_FILE, TASK_FILE


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve", help="Serve exported adapters over HTTP (mixed-task batches).",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument(
        "exports", nargs="+", metavar="EXPORT|FOLDER", help="Export folders, or folders of them."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."
    )
    parser.add_argument("--port", type=int, default=8000, help="Port to listen on.")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    parser.add_argument("--backbone", help="The backbone, for exports without task.json.")
    parser.add_argument("--max-batch-size", type=int, default=32, help="Most requests in one batch.")
    parser.add_argument("--batch-timeout", type=float, default=0.005, help="Seconds to wait to fill a batch.")
    parser.add_argument("--max-body-mb", type=float, default=10.0, help="Largest request body, in MB.")
    parser.add_argument(
        "--max-audio-seconds", type=float, default=30.0, help="Longest clip (or the backbone's window)."
    )
    parser.set_defaults(func=run)
    return parser


def export_folders(paths: Sequence[str]) -> list[str]:
    """Each path that is an export, and every export found below each path that is not."""
    found: list[str] = []
    for path in map(Path, paths):
        if _is_export(path) or not path.is_dir():
            found.append(str(path))  # read_export says what is wrong with a path that is no export
            continue
        below = sorted({p.parent for name in (TASK_FILE, CONFIG_FILE, HEAD_FILE) for p in path.rglob(name)})
        found += [str(folder) for folder in below if _is_export(folder)] or [str(path)]
    return found


def _is_export(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in (TASK_FILE, CONFIG_FILE, HEAD_FILE))


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..inference import InferenceSession, UsageError
    from ..inference.server import create_app

    try:
        session = InferenceSession.from_exports(export_folders(args.exports), args.backbone, args.device)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(
        session,
        args.max_batch_size,
        args.batch_timeout,
        int(args.max_body_mb * 1024 * 1024),
        args.max_audio_seconds,
    )
    print(
        f"serving {', '.join(session.tasks)} on http://{args.host}:{args.port} (docs: /docs)", file=sys.stderr
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``mm-adapters serve ...`` on its own."""
    parser = argparse.ArgumentParser(prog="mm-adapters")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)]))
