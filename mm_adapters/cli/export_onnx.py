"""``mm-adapters export-onnx EXPORT [EXPORT ...] OUT``: exported tasks -> an ONNX folder for ONNX Runtime.

    mm-adapters export-onnx runs/sst2/adapter onnx/sst2                                   # one task, fp32
    mm-adapters export-onnx runs/sst2/adapter runs/agnews/adapter onnx/text --swappable --quantize int8
    mm-adapters export-onnx old_export/ onnx/old --backbone demo-vit                      # export without task.json

The backbone is the one each export's ``task.json`` names (``--backbone`` for exports without it, or to replace
it). Several exports become one multi-task graph (every task's logits in one pass), or with ``--swappable`` one
backbone graph plus a small weight file per task. ``--quantize int8`` adds an int8 copy of each graph (the
frozen backbone's matmuls quantised, adapters and heads kept fp32). Exit status 2 for a mistake in the command,
1 when the model cannot be exported (the message names the failing operation).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export-onnx", help="Export trained adapters to ONNX (swappable task weights, int8 backbone).",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("exports", nargs="+", metavar="EXPORT", help="Exported task folders.")
    parser.add_argument("out", metavar="OUT", help="The ONNX folder to write.")
    parser.add_argument(
        "--swappable", action="store_true", help="One backbone graph + one weight file per task."
    )
    parser.add_argument("--quantize", choices=["int8"], help="Also write an int8 backbone graph.")
    parser.add_argument("--backbone", help="The backbone name, for exports without task.json.")
    parser.add_argument("--pretrained", help="The open_clip weight tag, with --backbone.")
    parser.add_argument(
        "--adapters", nargs="*", default=[], help="For a fusion export: the adapters it fuses."
    )
    parser.add_argument("--opset", type=int, help="ONNX opset (default: the library's).")
    parser.set_defaults(func=run)
    return parser


class _UsageError(ValueError):
    pass


def run(args: argparse.Namespace) -> int:
    from ..onnx import OnnxExportError, export_onnx

    try:
        folders = [Path(path).expanduser() for path in args.exports]
        for folder in folders:
            if not folder.is_dir():
                raise _UsageError(
                    f"Export folder {folder} does not exist; pass the folders export_adapter wrote."
                )
        backbone = _backbone(folders, args.backbone, args.pretrained)
    except _UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    options = {"swappable": args.swappable, "quantize": args.quantize, "adapters": args.adapters}
    if args.opset:
        options["opset"] = args.opset
    try:
        out = export_onnx(backbone, folders, Path(args.out).expanduser(), **options)
    except (OnnxExportError, ValueError, OSError) as error:
        print(f"error while exporting: {error}", file=sys.stderr)
        return 1
    sizes = json.loads((out / "onnx_export.json").read_text(encoding="utf-8"))["file_sizes"]
    for name, size in sizes.items():
        print(f"{size / 1e6:10.3f} MB  {out / name}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``mm-adapters export-onnx ...`` on its own (tests call it with a list of arguments)."""
    parser = argparse.ArgumentParser(prog="mm-adapters")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["export-onnx", *(sys.argv[1:] if argv is None else argv)]))


def _backbone(folders: list[Path], name: str | None, pretrained: str | None):
    from ..backbones import BackboneNotFoundError, load_backbone
    from ..onnx.preprocessing import read_task_json

    options: dict = {}
    if name is None:
        described = [(read_task_json(folder) or {}).get("backbone") or {} for folder in folders]
        names = {d.get("name") for d in described}
        if None in names:
            missing = [str(f) for f, d in zip(folders, described, strict=True) if d.get("name") is None]
            raise _UsageError(
                f"{', '.join(missing)} do(es) not name a backbone (no task.json); pass --backbone NAME (what "
                "the adapter was trained on, e.g. demo-vit or sentence-transformers/all-MiniLM-L6-v2)."
            )
        if len(names) > 1:
            raise _UsageError(
                f"The exports were trained on different backbones {sorted(names)}; export them apart."
            )
        name = names.pop()
        options = {
            k: described[0][k]
            for k in ("pretrained", "max_length", "seed")
            if described[0].get(k) is not None
        }
    if pretrained is not None:
        options["pretrained"] = pretrained
    try:
        return load_backbone(name, **options)
    except BackboneNotFoundError as error:
        raise _UsageError(str(error)) from None
