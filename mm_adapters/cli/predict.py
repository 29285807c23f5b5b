"""``mm-adapters predict EXPORT [EXPORT ...] INPUT ...``: every export's answer for every input, one row each.

    mm-adapters predict runs/demos/vit_cifar/adapter photos/                   # a folder of images, recursively
    mm-adapters predict runs/sst2/adapter runs/agnews/adapter reviews.csv -o out.csv   # two tasks, one pass
    echo "a fine film" | mm-adapters predict runs/sst2/adapter                  # text lines on stdin
    mm-adapters predict runs/demos/clip_retrieval/adapter photos/ --captions captions.txt --top-k 3

The leading arguments that are export folders are the exports; the rest are inputs: image or audio files, folders
of them (searched recursively), a table (csv, tsv, jsonl, json, parquet; its column found as ``--data`` finds it,
or ``--column``), a .txt file of lines, or ``-`` for stdin. Output: JSON lines (default) or CSV, one row per input
with each task's label, probability and top-k (retrieval: the best-matching captions or images; speech
recognition: the transcript). An ``mm-adapters export-onnx`` folder runs with ONNX Runtime and its saved
preprocessing (classification and CTC tasks), with the same output. Exit status 2 for a mistake in the command (the message says which), 1 for a failure
while predicting.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from tqdm import tqdm

from ..io import ADAPTER_CONFIG_FILE as CONFIG_FILE
from ..io import HEAD_FILE, TASK_FILE
from ..io import ONNX_MANIFEST_FILE as ONNX_MANIFEST


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict", help="Predict with exported adapters on files, folders, tables or stdin.",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("paths", nargs="+", metavar="EXPORT|INPUT", help="Export folders, then the inputs.")
    parser.add_argument(
        "-o", "--output", help="Write to this .csv or .jsonl file (default: JSON lines on stdout)."
    )
    parser.add_argument("--top-k", type=int, default=1, help="How many best classes (or matches) per task.")
    parser.add_argument("--batch-size", type=int, default=32, help="Inputs per forward pass.")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    parser.add_argument(
        "--backbone", help="The backbone, for exports without task.json (or to replace theirs)."
    )
    parser.add_argument("--task", action="append", help="Only these tasks (by name; repeat the option).")
    parser.add_argument("--column", help="The input column of a table (default: found by its name).")
    parser.add_argument(
        "--captions", help="Retrieval on images: a .txt file of captions to rank, one per line."
    )
    parser.add_argument("--images", help="Retrieval on texts: an image folder (or file) to rank.")
    parser.add_argument(
        "--max-new-tokens", type=int, help="Seq2seq speech recognition: most tokens per clip."
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        help="ONNX folders: which graph (default: int8 where written).",
    )
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..inference import UsageError

    try:
        return _predict(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError, RuntimeError) as error:
        print(f"error while predicting: {error}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``mm-adapters predict ...`` on its own (tests call it with a list of arguments)."""
    parser = argparse.ArgumentParser(prog="mm-adapters")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["predict", *(sys.argv[1:] if argv is None else argv)]))


def split_exports(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The leading export folders (or hub ids, ``org/name[@rev]``), and the inputs after them."""
    count = 0
    for path in paths:
        folder = Path(path).expanduser()
        if not (
            folder.is_dir()
            and any((folder / f).is_file() for f in (TASK_FILE, CONFIG_FILE, HEAD_FILE, ONNX_MANIFEST))
        ):
            if not _hub_id(path):
                break
        count += 1
    return list(paths[:count]), list(paths[count:])


def _hub_id(value: str) -> bool:
    """A hub id that is not a local path and does not name an input file (``photos/cat.jpg``, ``data/x.csv``)."""
    from ..inference.inputs import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, TABLE_EXTENSIONS, TEXT_EXTENSIONS
    from ..io.hub import parse_hub_id

    inputs = {*AUDIO_EXTENSIONS, *IMAGE_EXTENSIONS, *TABLE_EXTENSIONS, *TEXT_EXTENSIONS}
    path = Path(value).expanduser()
    return not path.exists() and parse_hub_id(value) is not None and path.suffix.lower() not in inputs


def _predict(args: argparse.Namespace) -> int:
    from ..inference import InferenceSession, ResultWriter, UsageError, collect_inputs, output_format

    if args.top_k < 1 or args.batch_size < 1:
        raise UsageError("--top-k and --batch-size must be at least 1.", "top_k")
    import datasets

    datasets.disable_progress_bars()  # reading a table is quick; our own bar counts the inputs
    exports, sources = split_exports(args.paths)
    if not exports:
        first = Path(args.paths[0])
        what = "does not exist" if not first.exists() else "is not an exported task folder"
        raise UsageError(
            f"The first argument {args.paths[0]} {what}: start with export folders (the adapter folder a recipe "
            "writes, e.g. runs/demos/vit_cifar/adapter), then the inputs.",
            "export",
        )
    kind = output_format(args.output)
    if args.output and not Path(args.output).expanduser().parent.is_dir():
        raise UsageError(
            f"-o {args.output}: the folder {Path(args.output).parent} does not exist; create it first.",
            "output",
        )
    if any((Path(e).expanduser() / ONNX_MANIFEST).is_file() for e in exports):
        return _predict_onnx(args, exports, sources, kind)
    session = InferenceSession.from_exports(
        exports, backbone=args.backbone, device=args.device, max_new_tokens=args.max_new_tokens
    )
    tasks = args.task or list(session.tasks)
    modality = _modality(session, tasks, args, sources)
    candidates = _candidates(args)
    items = collect_inputs(sources, modality, args.column, sys.stdin)
    session.check_inputs(tasks, modality)
    output = open(args.output, "w", encoding="utf-8", newline="") if args.output else nullcontext(sys.stdout)  # noqa: SIM115
    with output as handle, tqdm(total=len(items), unit="input", file=sys.stderr, disable=args.quiet) as bar:
        writer = ResultWriter(handle, kind)
        for start in range(0, len(items), args.batch_size):
            chunk = items[start : start + args.batch_size]
            writer.write([item.id for item in chunk], session.predict(chunk, tasks, args.top_k, candidates))
            bar.update(len(chunk))
    return 0


def _modality(session, tasks: Sequence[str], args: argparse.Namespace, sources: Sequence[str]) -> str:
    """The input kind every chosen task reads (retrieval reads both: images with --captions, texts with --images
    or from stdin / .txt files / tables)."""
    from ..inference import UsageError

    reads = {name: set(session.tasks[name].export.inputs or ()) for name in session.known(tasks)}
    common = set.intersection(*reads.values())
    if not common:
        listed = "; ".join(f"{name} reads {'/'.join(sorted(kinds))}" for name, kinds in reads.items())
        raise UsageError(
            f"These exports read different inputs ({listed}); predict them in separate runs.", "input"
        )
    if len(common) == 1:
        return common.pop()
    if args.captions:
        return "image"
    if (
        args.images
        or not sources
        or all(s == "-" or s.endswith((".txt", ".csv", ".tsv", ".jsonl")) for s in sources)
    ):
        return "text"
    return "image"


def _candidates(args: argparse.Namespace) -> list | None:
    """What retrieval tasks rank: the --captions lines (for images) or the --images (for texts)."""
    from ..inference import UsageError, collect_inputs

    if args.captions:
        path = Path(args.captions)
        if not path.is_file():
            raise UsageError(
                f"--captions {path} does not exist; pass a .txt file, one caption per line.", "captions"
            )
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.images:
        return collect_inputs([args.images], "image")
    return None


def _predict_onnx(args: argparse.Namespace, exports: Sequence[str], sources: Sequence[str], kind: str) -> int:
    """An ``export-onnx`` folder: ONNX Runtime with the folder's preprocessing, the same rows as PyTorch exports."""
    from ..inference import ResultWriter, UsageError, collect_inputs
    from ..inference.onnx_session import OnnxSession

    if len(exports) != 1:
        raise UsageError(
            "Give one ONNX folder (it may hold several tasks: export them together with export-onnx), without "
            "PyTorch exports beside it.",
            "export",
        )
    if args.captions or args.images:
        raise UsageError(
            "--captions / --images are for retrieval exports, which predict runs in PyTorch.", "captions"
        )
    session = OnnxSession(exports[0], precision=args.precision)
    tasks = session.check_tasks(args.task or session.tasks)
    items = collect_inputs(sources, session.modality, args.column, sys.stdin)
    output = open(args.output, "w", encoding="utf-8", newline="") if args.output else nullcontext(sys.stdout)  # noqa: SIM115
    with output as handle, tqdm(total=len(items), unit="input", file=sys.stderr, disable=args.quiet) as bar:
        writer = ResultWriter(handle, kind)
        for start in range(0, len(items), args.batch_size):
            chunk = items[start : start + args.batch_size]
            writer.write([item.id for item in chunk], session.predict(chunk, tasks, args.top_k))
            bar.update(len(chunk))
    return 0
