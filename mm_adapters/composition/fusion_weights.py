"""Reading AdapterFusion attention weights (opt-in, through forward hooks) and plotting them."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..atomic import write_file_atomically
from ..state import get_state, iter_sites

SiteKey = tuple[str, int, str]


@contextmanager
def record_fusion_weights(model: nn.Module, name: str) -> Iterator[dict[SiteKey, torch.Tensor]]:
    """Within the block, forward passes store fusion ``name``'s weights in the yielded dict:
    ``{(tower, layer, site): tensor B x T x N}`` (detached, weights over the fused adapters sum to 1 per token).

    Outside the block nothing is recorded, so normal forwards keep no extra tensors::

        with record_fusion_weights(model, "sst-mnli") as weights:
            model(**batch)
        plot_fusion_weights(weights, "fusion.png", adapter_names=list_fusions(model)["sst-mnli"])
    """
    if name not in get_state(model).fusions:
        raise ValueError(f"No fusion named {name!r}; this model has {sorted(get_state(model).fusions)}.")
    weights: dict[SiteKey, torch.Tensor] = {}
    handles = []
    for site in iter_sites(model):
        if name in site.fusions:
            key = (site.tower, site.layer_index, site.site)
            handles.append(site.fusions[name].weights.register_forward_hook(_keeper(weights, key)))
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()


def _keeper(weights: dict[SiteKey, torch.Tensor], key: SiteKey):
    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        weights[key] = output.detach()

    return keep


def plot_fusion_weights(
    weights: dict[SiteKey, torch.Tensor],
    path: str | os.PathLike,
    adapter_names: Sequence[str] | None = None,
    sample: int = 0,
) -> Path:
    """Write a PNG of one heatmap per adapted site (tokens/patches x adapters) for batch element ``sample``."""
    # imported here so that importing mm_adapters never loads matplotlib; Figure needs no pyplot or global backend
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not weights:
        raise ValueError("No fusion weights to plot; run a forward pass inside record_fusion_weights first.")
    keys = sorted(weights)
    columns = min(4, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure = Figure(figsize=(3.2 * columns, 3.0 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, key in zip(axes, keys, strict=False):
        tensor = weights[key].float().cpu()
        matrix = tensor[sample] if tensor.dim() == 3 else tensor
        image = axis.imshow(
            matrix.numpy(), aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest"
        )
        tower, layer, site = key
        axis.set_title(f"{tower} layer {layer} {site}", fontsize=9)
        axis.set_ylabel("token / patch")
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        names = (
            list(adapter_names) if adapter_names is not None else [str(i) for i in range(matrix.shape[-1])]
        )
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    for axis in axes[len(keys) :]:
        axis.set_visible(False)
    figure.colorbar(image, ax=list(axes[: len(keys)]), shrink=0.8, label="fusion weight")
    return write_file_atomically(path, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
