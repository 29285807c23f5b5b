"""What holding torch's fused encoder path off costs: ``nn.TransformerEncoder`` in eval under no_grad, timed as the
base model (fused ``_transformer_encoder_layer_fwd``), with active adapters (each layer's Python path, so the adapters
run), and with the adapters inactive again (fused path back). Settings alternate every round; medians.

    python benchmarks/fused_path_hold.py                      # CPU, d=512, 6 layers, batch 8 x 128
    python benchmarks/fused_path_hold.py --width 64 --layers 2 --batch 2 --seq 16 --repeats 3   # smoke
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import mm_adapters as mma


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args()


def _time(model: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        model(x)  # warm
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(3):
            model(x)
        if x.is_cuda:
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / 3


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(args.width, 8, 4 * args.width, dropout=0.0, batch_first=True)
    model = nn.TransformerEncoder(layer, args.layers, enable_nested_tensor=False).to(args.device).eval()
    x = torch.randn(args.batch, args.seq, args.width, device=args.device)
    mma.add_adapter(model, "task", mma.AdapterConfig.pfeiffer(), example_inputs=x[:2, :8])
    settings = {"base (fused)": None, "adapters active (held off)": "task"}
    times: dict[str, list[float]] = {name: [] for name in settings}
    for _ in range(args.repeats):
        for name, active in settings.items():
            mma.set_active_adapters(model, active)
            times[name].append(_time(model, x))
    reference = statistics.median(times["base (fused)"])
    print(f"device {args.device}, d={args.width}, {args.layers} layers, batch {args.batch} x {args.seq}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28s} {median * 1e3:9.2f} ms  x{median / reference:.2f}")


if __name__ == "__main__":
    main()
