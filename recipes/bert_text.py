"""Bottleneck adapters on a frozen BERT-style encoder for sentence classification (SST-2 sentiment).

    python recipes/bert_text.py --preset demo                  # real all-MiniLM-L6-v2 (packaged) + bundled SST-2
    python recipes/bert_text.py --preset demo --method probe  # the same backbone, head only (also full, lora)
    python recipes/bert_text.py --preset full                  # bert-base-uncased + GLUE SST-2 from the Hub
    python recipes/bert_text.py --data my_reviews/ --output-dir runs/reviews   # your train.csv + validation.csv

The demo validates on all 872 sentences of the GLUE SST-2 validation set. ``--data FOLDER`` trains on your own
table of texts and labels (train.csv + validation.csv, columns text,label; see "Your own data" below).
Presets: configs/bert_text/{demo,full}.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.data import (
    AdapterDataModule,
    TextClassificationCollator,
    label_names,
    load_hub_or_local,
    load_text_table,
    shared_class_labels,
    sst2_tsv,
)

SST2_NAMES = ["negative", "positive"]


@dataclass
class Config(runner.ClassificationConfig, runner.TextColumns):
    """The common options and the columns of a local table (see configs/bert_text/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, list[str]]:
    """A local folder or table (the local-data contract), the bundled SST-2 TSVs, or GLUE SST-2 from the hub."""
    if runner.is_local(config.data):
        local = runner.load_local(config, "text")
        train, val, names = local.train, local.validation, local.class_names
    elif config.data == "bundled:sst2":
        train, val = (
            load_text_table(sst2_tsv(split), label_names=SST2_NAMES) for split in ("train", "validation")
        )
        names = label_names(train)
    else:
        splits = {
            split: load_hub_or_local(config.data, split, "sst2").rename_column("sentence", "text")
            for split in ("train", "validation")
        }
        train, val = shared_class_labels(splits, "label").values()
        names = label_names(train)
    collate = TextClassificationCollator(backbone.tokenizer, backbone.max_length, num_classes=len(names))
    return runner.datamodule(config, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    return runner.train_classifier(Config, load_data, argv, adapter="sst2")


if __name__ == "__main__":
    main()
