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
``backbone.encode_text`` give the adapted embeddings. CLIP-Adapter's embedding adapters (a ``ModuleDict`` of
:class:`~mm_adapters.composition.FeatureAdapter` as the head) come back as that ``ModuleDict``: apply
``head["image"]`` / ``head["text"]`` to those embeddings. A fusion folder (``save_fusion``) reloads with the folders
of the adapters it fuses: ``load_for_inference(backbone, "fusion", adapters=["adapters/sst2", "adapters/agnews"])``.

A linear head is known from its tensors; any other head that :func:`export_adapter` knows (the feature adapters) is
described in ``head_config.json`` next to ``head.safetensors``. A classification head comes back with
``class_names`` (id -> name: ``head.class_names[predictions[0]]``), a CTC head with its ``vocabulary``
(``head.vocabulary.decode_ctc(ids)``), read from the folder's ``labels.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import write_directory_atomically
from ..backbones import Backbone
from ..composition import FeatureAdapter, load_fusion
from ..composition.fusion_io import CONFIG_FILE as FUSION_CONFIG_FILE
from ..data.vocabulary import CharVocabulary
from ..errors import AdapterLoadError
from ..injection import active_adapters, list_adapters
from ..layers.bottleneck import _ACTIVATIONS
from ..serialization import CONFIG_FILE, HEAD_FILE, load_adapter, save_adapter
from .base import AdapterTaskModule
from .method_weights import load_method_weights

HEAD_CONFIG_FILE = "head_config.json"
LABELS_FILE = "labels.json"
FEATURE_ADAPTERS = "feature_adapters"


def export_adapter(
    module: AdapterTaskModule, directory: str | os.PathLike, name: str | None = None, overwrite: bool = True
) -> Path:
    """Save the module's adapter (the active one unless ``name`` is given) and its ``head`` to ``directory``.

    Without adapters (a linear probe) only ``head.safetensors`` is written. The class names of a classification
    module (or the vocabulary of a CTC module) go to ``labels.json``.
    """
    head = getattr(module, "head", None)
    model = module.backbone.model
    description = head_description(head)
    labels = _labels_of(module)
    if not list_adapters(model):
        if head is None:
            raise ValueError("Nothing to export: the module has neither an adapter nor a head.")
        tensors = {key: value.detach().cpu().contiguous() for key, value in head.state_dict().items()}

        def fill(folder: Path) -> None:
            save_file(tensors, str(folder / HEAD_FILE))
            _write_description(folder, description)
            _write_labels(folder, labels)

        return write_directory_atomically(Path(directory), fill, overwrite)
    if name is None:
        active = active_adapters(model)
        if len(active) != 1:
            raise ValueError(f"Pass the adapter name to export; active adapters are {list(active)}.")
        name = active[0]
    if description is None and labels is None:
        return save_adapter(model, name, directory, head=head, overwrite=overwrite)

    def fill_with_description(folder: Path) -> None:
        save_adapter(model, name, folder, head=head, overwrite=True)
        _write_description(folder, description)
        _write_labels(folder, labels)

    return write_directory_atomically(Path(directory), fill_with_description, overwrite)


def head_description(head: nn.Module | None) -> dict[str, Any] | None:
    """What ``head_config.json`` says about a head that is not a single Linear (None for a Linear or no head).

    Raises ValueError for a head :func:`load_for_inference` could not rebuild."""
    if head is None or isinstance(head, nn.Linear):
        return None
    if isinstance(head, nn.ModuleDict) and all(isinstance(m, FeatureAdapter) for m in head.values()):
        return {
            "kind": FEATURE_ADAPTERS,
            "modules": {key: _feature_adapter_args(m) for key, m in head.items()},
        }
    raise ValueError(
        f"export_adapter knows linear heads and a ModuleDict of FeatureAdapter, not {type(head).__name__}; save "
        "that head with safetensors yourself and pass it to load_adapter(head=...) when loading."
    )


def load_for_inference(
    backbone: Backbone, directory: str | os.PathLike, adapters: Sequence[str | os.PathLike] = ()
) -> nn.Module | None:
    """Load an exported adapter (or a fusion, after the ``adapters`` folders it fuses) into ``backbone.model``
    (active, eval mode) and return its head, if any: an ``nn.Linear``, or the ``ModuleDict`` of feature adapters.
    The export of a full fine-tune or of LoRA (``--method full|lora``) also puts its backbone weights back."""
    folder = Path(directory)
    head = build_head(folder)
    method = load_method_weights(backbone.model, folder)  # a full fine-tune's backbone or LoRA, if any
    if (folder / FUSION_CONFIG_FILE).is_file():
        for adapter in adapters:
            load_adapter(backbone.model, adapter, set_active=False)
        try:
            load_fusion(backbone.model, folder, head=head)
        except AdapterLoadError as error:
            raise AdapterLoadError(
                f"{error} With load_for_inference, pass their folders as adapters=[...]."
            ) from None
    elif (folder / CONFIG_FILE).is_file():
        load_adapter(backbone.model, folder, head=head)
    elif head is not None:
        head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    elif method is None:
        raise FileNotFoundError(
            f"{folder} holds neither an adapter, a fusion nor a head; pass a folder export_adapter or save_fusion "
            "wrote."
        )
    backbone.eval()
    if head is not None and (folder / LABELS_FILE).is_file():
        saved = json.loads((folder / LABELS_FILE).read_text(encoding="utf-8"))
        if "class_names" in saved:
            head.class_names = list(saved["class_names"])
        if "vocabulary" in saved:
            head.vocabulary = CharVocabulary(tuple(saved["vocabulary"]))
    return head.eval() if head is not None else None


def build_head(folder: str | os.PathLike) -> nn.Module | None:
    """An untrained head shaped like the one saved in ``folder`` (None when it has no head.safetensors)."""
    folder = Path(folder)
    path = folder / HEAD_FILE
    if not path.is_file():
        return None
    description_path = folder / HEAD_CONFIG_FILE
    if description_path.is_file():
        description = json.loads(description_path.read_text())
        if description.get("kind") != FEATURE_ADAPTERS:
            raise AdapterLoadError(f"{description_path} describes a head of kind {description.get('kind')!r}; "
                                   f"this version knows {FEATURE_ADAPTERS!r} and linear heads.")  # fmt: skip
        return nn.ModuleDict({key: _feature_adapter(**args) for key, args in description["modules"].items()})
    tensors = load_file(str(path))
    if set(tensors) != {"weight", "bias"} or tensors["weight"].dim() != 2:
        raise AdapterLoadError(
            f"{path} holds a head that is not a single Linear (tensors {sorted(tensors)[:6]}) and {folder} has no "
            f"{HEAD_CONFIG_FILE} saying what it is; build that head yourself and load it with "
            "mm_adapters.load_adapter(model, folder, head=your_head)."
        )
    weight = tensors["weight"]
    return nn.Linear(weight.shape[1], weight.shape[0])


def _feature_adapter_args(adapter: FeatureAdapter) -> dict[str, Any]:
    activation = next(name for name, cls in _ACTIVATIONS.items() if type(adapter.act) is cls)
    return {
        "dim": adapter.down.in_features,
        "bottleneck": adapter.down.out_features,
        "alpha": adapter.alpha,
        "activation": activation,
    }


def _feature_adapter(dim: int, bottleneck: int, alpha: float, activation: str) -> FeatureAdapter:
    adapter = FeatureAdapter(dim, reduction_factor=dim / bottleneck, alpha=alpha, activation=activation)
    if adapter.down.out_features != bottleneck:  # dim / (dim / b) rounded down below b
        adapter.down, adapter.up = nn.Linear(dim, bottleneck), nn.Linear(bottleneck, dim)
    return adapter


def _write_description(folder: Path, description: dict[str, Any] | None) -> None:
    if description is not None:
        (folder / HEAD_CONFIG_FILE).write_text(json.dumps(description, indent=2) + "\n")


def _labels_of(module: AdapterTaskModule) -> dict[str, Any] | None:
    """What maps the head's output ids to names: class names, or the CTC characters (id 0 is the blank)."""
    vocabulary = getattr(module, "vocabulary", None)
    if isinstance(vocabulary, CharVocabulary):
        return {"task": "ctc", "blank_id": vocabulary.blank_id, "vocabulary": list(vocabulary.chars)}
    names = getattr(module, "class_names", None)
    return {"task": "classification", "class_names": list(names)} if names is not None else None


def _write_labels(folder: Path, labels: dict[str, Any] | None) -> None:
    if labels is not None:
        (folder / LABELS_FILE).write_text(
            json.dumps(labels, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
