"""Bottleneck adapters on a frozen BERT-style encoder for sentence classification (SST-2 sentiment).

    python recipes/bert_text.py --preset demo                  # real all-MiniLM-L6-v2 (packaged) + bundled SST-2
    python recipes/bert_text.py --preset demo --linear-probe   # the same backbone, head only, as a baseline
    python recipes/bert_text.py --preset full                  # bert-base-uncased + GLUE SST-2 from the Hub

The demo validates on all 872 sentences of the GLUE SST-2 validation set. ``--data`` also takes any CSV/TSV with
a sentence and a label column (e.g. the bundled AG News: data/text/agnews/train.tsv; validation.tsv next to it).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import classify  # noqa: E402
import common  # noqa: E402
from lightning import LightningDataModule  # noqa: E402

from mm_adapters.backbones import Backbone  # noqa: E402
from mm_adapters.data import (  # noqa: E402
    TextClassificationCollator,
    label_names,
    load_hub_or_local,
    load_text_table,
    sst2_tsv,
    to_class_labels,
)

PRESETS = {
    "demo": common.Preset(backbone="minilm", data="bundled:sst2", max_epochs=3, batch_size=32, lr=2e-3),
    "full": common.Preset(
        backbone="bert-base-uncased",
        data="nyu-mll/glue",
        max_epochs=3,
        batch_size=32,
        lr=5e-4,
        warmup_steps=300,
    ),
}
SST2_NAMES = ["negative", "positive"]


def load_data(settings: common.Settings, backbone: Backbone) -> tuple[LightningDataModule, list[str]]:
    """Bundled SST-2 TSVs, GLUE SST-2 from the hub, or a train CSV/TSV with a validation file next to it."""
    if settings.data == "bundled:sst2":
        train, val = (
            load_text_table(sst2_tsv(split), label_names=SST2_NAMES) for split in ("train", "validation")
        )
    elif settings.data == "nyu-mll/glue":
        train, val = (
            to_class_labels(load_hub_or_local(settings.data, split, "sst2").rename_column("sentence", "text"))
            for split in ("train", "validation")
        )
    else:
        train_path = Path(settings.data)
        train = load_text_table(train_path)
        val = load_text_table(
            train_path.with_name(f"validation{train_path.suffix}"), label_names=label_names(train)
        )
    names = label_names(train)
    collate = TextClassificationCollator(backbone.tokenizer, backbone.max_length, num_classes=len(names))
    return common.datamodule(settings, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return classify.run(__doc__, "bert_text", PRESETS, load_data, "sst2", argv)


if __name__ == "__main__":
    main()
