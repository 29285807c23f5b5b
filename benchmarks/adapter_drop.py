"""AdapterDrop speed-up: time a BERT-base-size random model with the adapters of the lowest n layers dropped,
side by side with dropping none (settings alternate every round; median of the per-round ratios).

    python benchmarks/adapter_drop.py                       # CPU, batch 8 x 128, drop 0 vs 5 of 12 layers
    python benchmarks/adapter_drop.py --drops 0 3 6 9 --modes inference --configs houlsby
"""

from __future__ import annotations

import argparse

import torch
from transformers import BertConfig, BertModel

import mm_adapters as mma
from mm_adapters.composition import time_adapter_drop


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument(
        "--drops", type=int, nargs="+", default=[0, 5], help="layer counts; the first is the reference"
    )
    parser.add_argument("--configs", nargs="+", default=["pfeiffer", "houlsby"], help="adapter presets")
    parser.add_argument("--modes", nargs="+", default=["inference", "train"], choices=["inference", "train"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    return parser.parse_args()


def build(args: argparse.Namespace, preset: str) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=max(512, args.seq),
    )
    model = BertModel(config, add_pooling_layer=False).to(args.device)
    mma.add_adapter(model, "task", mma.AdapterConfig.preset(preset))
    return model


def step_fn(model: BertModel, batch: dict, mode: str, device: torch.device):
    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def inference() -> None:
        with torch.inference_mode():
            model(**batch)
        synchronize()

    def train() -> None:
        model.zero_grad(set_to_none=True)
        model(**batch).last_hidden_state.float().pow(2).mean().backward()
        synchronize()

    if mode == "inference":
        model.eval()
        return inference
    model.train()
    return train


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ids = torch.randint(1000, 30000, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}
    reference = args.drops[0]
    print(
        f"BERT {args.layers} layers x {args.hidden}, batch {args.batch} x {args.seq}, {device}, "
        f"{torch.get_num_threads()} threads, {args.repeats} rounds"
    )
    for preset in args.configs:
        model = build(args, preset)
        trainable = mma.count_parameters(model).trainable
        for mode in args.modes:
            timing = time_adapter_drop(
                model, step_fn(model, batch, mode, device), args.drops, args.repeats, args.warmup
            )
            for layers in args.drops:
                print(
                    f"{preset:9s} {mode:9s} drop {layers:2d}: {1000 * timing.median(layers):8.1f} ms  "
                    f"speed-up vs drop {reference}: {timing.speedup(layers, reference):.3f}x  "
                    f"({trainable:,} adapter parameters)"
                )


if __name__ == "__main__":
    main()
