"""Export a trained adapter with its task head, and load it back for inference.

Reload for inference in a few lines (the backbone must be the one the adapter was trained on)::

    import torch
    from mm_adapters.backbones import load_backbone
    from mm_adapters.data import ImageTransform
    from mm_adapters.lightning import load_for_inference

    backbone = load_backbone("demo-vit")  # or "google/vit-base-patch16-224", a local folder, ...
    head = load_for_inference(backbone, "runs/vit_cifar/adapter")  # adds the adapter, returns the linear head
    transform = ImageTransform(backbone.image_size, backbone.image_mean, backbone.image_std)
    pixel_values = torch.stack([transform(image) for image in images])  # PIL images, paths or arrays
    with torch.no_grad():
        predictions = head(backbone({"pixel_values": pixel_values})).argmax(dim=-1)

Retrieval adapters have no head: ``load_for_inference`` returns None and ``backbone.encode_image`` /
``backbone.encode_text`` give the adapted embeddings.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import write_directory_atomically
from ..backbones import Backbone
from ..injection import active_adapters, list_adapters
from ..serialization import CONFIG_FILE, HEAD_FILE, load_adapter, save_adapter
from .base import AdapterTaskModule


def export_adapter(
    module: AdapterTaskModule, directory: str | os.PathLike, name: str | None = None, overwrite: bool = True
) -> Path:
    """Save the module's adapter (the active one unless ``name`` is given) and its ``head`` to ``directory``.

    Without adapters (a linear probe) only ``head.safetensors`` is written.
    """
    head = getattr(module, "head", None)
    model = module.backbone.model
    if not list_adapters(model):
        if head is None:
            raise ValueError("Nothing to export: the module has neither an adapter nor a head.")
        tensors = {key: value.detach().cpu().contiguous() for key, value in head.state_dict().items()}
        return write_directory_atomically(
            Path(directory), lambda folder: save_file(tensors, str(folder / HEAD_FILE)), overwrite
        )
    if name is None:
        active = active_adapters(model)
        if len(active) != 1:
            raise ValueError(f"Pass the adapter name to export; active adapters are {list(active)}.")
        name = active[0]
    return save_adapter(model, name, directory, head=head, overwrite=overwrite)


def load_for_inference(backbone: Backbone, directory: str | os.PathLike) -> nn.Linear | None:
    """Load an exported adapter into ``backbone.model`` (active, eval mode) and return its linear head, if any."""
    folder = Path(directory)
    head = _head_for(folder / HEAD_FILE)
    if (folder / CONFIG_FILE).is_file():
        load_adapter(backbone.model, folder, head=head)
    elif head is not None:
        head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    else:
        raise FileNotFoundError(
            f"{folder} holds neither an adapter nor a head; pass a folder export_adapter wrote."
        )
    backbone.eval()
    return head.eval() if head is not None else None


def _head_for(path: Path) -> nn.Linear | None:
    if not path.is_file():
        return None
    weight = load_file(str(path))["weight"]
    return nn.Linear(weight.shape[1], weight.shape[0])
