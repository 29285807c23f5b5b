"""The command-line options every recipe takes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mm_adapters.reliability import STRATEGIES

PLACEMENTS = ("houlsby", "pfeiffer", "parallel", "houlsby_ffn")


def build_parser(
    description: str, presets: dict[str, Any], linear_probe: bool = False
) -> argparse.ArgumentParser:
    """The options every recipe takes; preset-dependent ones default to the preset's value (shown in --help)."""
    demo, full = presets["demo"], presets["full"]

    def default(field: str) -> str:
        return f"(demo: {getattr(demo, field)}, full: {getattr(full, field)})"

    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--preset",
        choices=("auto", "demo", "full"),
        default="auto",
        help="full: the published backbone and data (needs the Hub or a cache); demo: bundled data and a small "
        "backbone, offline; auto: full when available, else demo (with a banner saying so). Default: auto.",
    )
    add(
        "--backbone",
        help=f"Backbone: demo name, hub id, timm/open_clip name or local folder {default('backbone')}.",
    )
    add("--data", help=f"Data set: bundled/local path or hub name {default('data')}.")
    add("--placement", choices=PLACEMENTS, help=f"Adapter placement {default('placement')}.")
    add(
        "--reduction-factor", type=float, help=f"Hidden size / bottleneck size {default('reduction_factor')}."
    )
    add("--layers", help=f'Layers with adapters: "all", "last:K" or "0,1,5" {default("layers")}.')
    add("--max-epochs", type=int, help=f"Training epochs {default('max_epochs')}.")
    add(
        "--max-steps",
        type=int,
        help=f"Stop after this many optimizer steps; -1 = no limit {default('max_steps')}.",
    )
    add("--batch-size", type=int, help=f"Batch size {default('batch_size')}.")
    add("--lr", type=float, help=f"AdamW learning rate {default('lr')}.")
    add(
        "--warmup-steps",
        type=int,
        help=f"Linear warm-up steps before cosine decay {default('warmup_steps')}.",
    )
    add("--output-dir", type=Path, help="Where the run writes its outputs (default: runs/<recipe>).")
    add("--seed", type=int, default=0, help="Seed for adapter and head weights and data order (default: 0).")
    add(
        "--resume",
        default="auto",
        help="auto: continue from <output-dir>/checkpoints/last.ckpt if an earlier (killed) run left one; "
        "none: start over; or a trainable-only .ckpt of this recipe (default: auto).",
    )
    add(
        "--checkpoint-every-n-steps",
        type=int,
        default=0,
        help="Also write checkpoints/last.ckpt every N optimizer steps; 0 = after every epoch (default: 0).",
    )
    add("--devices", type=_devices, default=1, help='Processes (GPUs) per node, or "auto" (default: 1).')
    add("--num-nodes", type=int, default=1, help="Machines taking part (default: 1).")
    add(
        "--strategy",
        choices=STRATEGIES,
        default="auto",
        help="Lightning strategy for several devices; see docs/scale_out.md (default: auto).",
    )
    add(
        "--precision",
        default="auto",
        help='Lightning precision; "auto" = bf16-mixed on a GPU with bf16, else 32-true (default: auto).',
    )
    add("--num-workers", type=int, default=0, help="Data loader worker processes (default: 0).")
    add(
        "--limit-train-batches",
        type=_count_or_fraction,
        default=1.0,
        help="Train on this many batches per epoch (int) or this fraction of them (float); default: all.",
    )
    add(
        "--limit-val-batches",
        type=_count_or_fraction,
        default=1.0,
        help="Validate on this many batches (int) or this fraction of them (float); default: all.",
    )
    add(
        "--prefix-cache",
        action="store_true",
        help="Cache the frozen layers below the lowest adapter per sample in the first epoch and run only the "
        "adapted layers afterwards (use with --layers last:K; data must not be augmented).",
    )
    if linear_probe:
        add(
            "--linear-probe",
            action="store_true",
            help="Train the linear head only, without adapters (a baseline).",
        )
    return parser  # fmt: skip


def _devices(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def _count_or_fraction(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def parse_layers(text: str) -> str | tuple[int, ...]:
    """``"all"`` and ``"last:K"`` stay strings; ``"0,1,5"`` becomes a tuple of indices."""
    if text == "all" or text.startswith("last:"):
        return text
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SystemExit(
            f'error: --layers must be "all", "last:K" or comma-separated indices, got {text!r}.'
        ) from None
