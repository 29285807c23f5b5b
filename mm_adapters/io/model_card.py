"""The model card of an export folder: ``README.md`` with the hub's YAML metadata (``library_name: mm_adapters``,
``base_model``, tags, the run's metrics as a model index), the class names, and the lines that load it.

Written by the runner beside the export (:func:`write_model_card`); ``mm-adapters push`` puts the repo id into its
loading lines (:func:`point_card_at`) before uploading the folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .files import MODEL_CARD_FILE
from .hub import parse_hub_id

LIBRARY = "mm_adapters"
TASK_TAGS = {
    "classification": "classification",
    "ctc": "automatic-speech-recognition",
    "retrieval": "retrieval",
}
_LOAD_LINE = re.compile(r'load_for_inference\(backbone, "[^"\n]*"\)')

TEMPLATE = """---
{card_data}
---

# {title}

A bottleneck adapter{head} for the frozen backbone `{backbone}`, trained with mm_adapters ({recipe}) on `{data}`.
Only the adapter and the head are here; the backbone comes from its own repo.

## Load it

```python
from mm_adapters.backbones import load_backbone
from mm_adapters.lightning import load_for_inference

backbone = load_backbone("{backbone}")
head = load_for_inference(backbone, "{source}")
```

`head(backbone(batch))` gives the logits (`head.class_names` names them); where there is no head (`head` is None),
`backbone(batch)` gives the adapted features.
{metrics}{classes}"""


def write_model_card(
    folder: str | Path,
    *,
    backbone: str,
    task: str | None = None,
    metrics: Mapping[str, float] | None = None,
    class_names: Sequence[str] | None = None,
    data: str | None = None,
    recipe: str | None = None,
    name: str | None = None,
    tags: Sequence[str] = (),
) -> Path:
    """Write ``README.md`` into the export ``folder``: hub metadata and how to load it; returns its path.

    ``backbone`` is what ``load_backbone`` was called with (the ``base_model`` when it is a hub id); ``metrics`` the
    run's final validation metrics; ``data`` the data set (a local path is named by its folder)."""
    folder = Path(folder)
    dataset = Path(data).name if data and Path(data).expanduser().exists() else data
    all_tags = [
        LIBRARY,
        "adapters",
        "bottleneck-adapter",
        *([TASK_TAGS[task]] if task in TASK_TAGS else []),
        *tags,
    ]
    results = [
        EvalResult(
            task_type=TASK_TAGS.get(task or "", task or "other"), dataset_type=dataset, dataset_name=dataset,
            metric_type=metric, metric_value=float(value),
        )
        for metric, value in (metrics or {}).items()
    ] if dataset else None  # fmt: skip
    card_data = ModelCardData(
        library_name=LIBRARY,
        base_model=backbone if parse_hub_id(backbone) else None,
        tags=list(dict.fromkeys(all_tags)),
        model_name=name or folder.name,
        eval_results=results or None,
    )
    text = TEMPLATE.format(
        card_data=card_data.to_yaml(),
        title=name or folder.name,
        head=" with its task head" if class_names else "",
        backbone=backbone,
        recipe=f"recipe `{recipe}`" if recipe else "its Python API",
        data=data or "its data",
        source=str(folder),
        metrics=_table(
            "Metrics (validation)", ("metric", "value"), [(k, f"{v:.4f}") for k, v in (metrics or {}).items()]
        ),
        classes=_table("Classes", ("id", "name"), list(enumerate(class_names or []))),
    )
    path = folder / MODEL_CARD_FILE
    ModelCard(text).save(path)
    return path


def point_card_at(folder: str | Path, repo_id: str) -> bool:
    """Make the card's loading lines load ``repo_id``; False when the folder has no card of ours."""
    path = Path(folder) / MODEL_CARD_FILE
    if not path.is_file():
        return False
    card = ModelCard.load(path)
    if card.data.get("library_name") != LIBRARY:
        return False
    updated = _LOAD_LINE.sub(f'load_for_inference(backbone, "{repo_id}")', card.text)
    ModelCard(f"---\n{card.data.to_yaml()}\n---\n{updated}").save(path)
    return True


def _table(title: str, header: tuple[str, str], rows: list[tuple]) -> str:
    if not rows:
        return ""
    lines = [f"\n## {title}\n", f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines) + "\n"
