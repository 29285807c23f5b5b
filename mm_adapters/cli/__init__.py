"""``mm-adapters`` (also ``python -m mm_adapters``): one console script, one module per subcommand.

Each module in :data:`COMMANDS` exposes ``add_parser(subparsers)`` (adds its subparser, sets ``func=run``),
``run(args) -> int`` and ``main(argv=None) -> int``. A command is one line here; none is skipped silently.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "predict": "mm_adapters.cli.predict",
    "serve": "mm_adapters.cli.serve",
    "push": "mm_adapters.cli.push",
    "export-onnx": "mm_adapters.cli.export_onnx",
}
"""Subcommand -> module."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mm-adapters",
        description="Use trained adapters: predict on files, serve them over HTTP, export them to ONNX, push them to the hub.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
