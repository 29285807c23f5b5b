"""``mm-adapters push FOLDER REPO_ID``: upload an export folder (adapter, head, labels, model card) to the hub.

A thin layer over :func:`mm_adapters.io.upload.push_folder`, with the same argument names.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..io.upload import PushError, check_pushable, push_folder, upload_plan


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="upload an export folder to the Hugging Face hub",
        description="Upload the folder export_adapter wrote (adapter, head, labels.json, README.md model card) to a "
        "hub repo, created if needed; the card's loading lines then name the repo.",
    )
    parser.add_argument("folder", help="the export folder (e.g. runs/vit_cifar/adapter)")
    parser.add_argument("repo_id", help="the hub repo, user-or-org/name")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    parser.add_argument("--commit-message", default="Upload adapter with mm_adapters")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the files that would be uploaded, upload none"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        if args.dry_run:
            print("\n".join(upload_plan(check_pushable(args.folder, args.repo_id))))
            return 0
        url = push_folder(
            args.folder, args.repo_id, private=args.private, revision=args.revision,
            commit_message=args.commit_message,
        )  # fmt: skip
    except PushError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(url)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mm-adapters")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["push", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
