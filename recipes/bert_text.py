"""Bottleneck adapters on a frozen BERT-style encoder for sentence classification (SST-2 sentiment).

    python recipes/bert_text.py --preset demo                  # real all-MiniLM-L6-v2 (packaged) + bundled SST-2
    python recipes/bert_text.py --preset demo --linear-probe   # the same backbone, head only, as a baseline
    python recipes/bert_text.py --preset full                  # bert-base-uncased + GLUE SST-2 from the Hub

The demo validates on all 872 sentences of the GLUE SST-2 validation set. ``--data`` also takes any CSV/TSV with
a sentence and a label column (e.g. the bundled AG News: data/text/agnews/train.tsv; validation.tsv next to it).
Presets: configs/bert_text/{demo,full}.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mm_adapters import runner
from mm_adapters.backbones import Backbone
from mm_adapters.data import (
    AdapterDataModule,
    TextClassificationCollator,
    label_names,
    load_hub_or_local,
    load_text_table,
    sst2_tsv,
    to_class_labels,
)
from mm_adapters.lightning import ClassificationModule

SST2_NAMES = ["negative", "positive"]


@dataclass
class Config(runner.ClassificationConfig):
    """The common options (see configs/bert_text/ for the presets)."""


def load_data(config: Config, backbone: Backbone) -> tuple[AdapterDataModule, list[str]]:
    """Bundled SST-2 TSVs, GLUE SST-2 from the hub, or a train CSV/TSV with a validation file next to it."""
    if config.data == "bundled:sst2":
        train, val = (
            load_text_table(sst2_tsv(split), label_names=SST2_NAMES) for split in ("train", "validation")
        )
    elif config.data == "nyu-mll/glue":
        train, val = (
            to_class_labels(load_hub_or_local(config.data, split, "sst2").rename_column("sentence", "text"))
            for split in ("train", "validation")
        )
    else:
        train_path = Path(config.data)
        train = load_text_table(train_path)
        val = load_text_table(
            train_path.with_name(f"validation{train_path.suffix}"), label_names=label_names(train)
        )
    names = label_names(train)
    collate = TextClassificationCollator(backbone.tokenizer, backbone.max_length, num_classes=len(names))
    return runner.datamodule(config, train, val, collate), names


def main(argv: list[str] | None = None) -> dict:
    run = runner.start(Config, load_data, argv, adapter="sst2")
    datamodule, names = run.data
    config = run.config
    module = ClassificationModule(
        run.backbone, len(names), lr=config.lr, warmup_steps=config.warmup_steps, class_names=names,
        prefix_cache=config.prefix_cache,
    )  # fmt: skip
    trainer = run.trainer()
    run.fit(trainer, module, datamodule)
    return run.write(run.evaluate(trainer, module, datamodule))


if __name__ == "__main__":
    main()
