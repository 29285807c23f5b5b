"""The prefix-cache option of the task modules: same training result, fewer prefix computations."""

import lightning as L
import torch
from test_lightning import NUM_CLASSES, loader, rows, trainer

import mm_adapters as mma
from mm_adapters.backbones import wrap_backbone
from mm_adapters.lightning import ClassificationModule

from tiny_backbones import FACTORIES


def _fit(family: str, prefix_cache: bool) -> ClassificationModule:
    L.seed_everything(0)
    backbone = wrap_backbone(FACTORIES[family](0).model)
    mma.add_adapter(backbone.model, "task", mma.AdapterConfig.pfeiffer(reduction_factor=4, layers="last:1"))
    module = ClassificationModule(backbone, NUM_CLASSES, lr=1e-2, prefix_cache=prefix_cache)
    samples = rows(family)
    trainer(max_epochs=3, max_steps=-1).fit(module, loader(samples), loader(samples))
    return module


def test_training_with_the_prefix_cache_gives_the_same_adapter_and_head():
    cached, plain = _fit("hf_bert", True), _fit("hf_bert", False)
    trained = {k: v for k, v in plain.state_dict().items()}
    for key, value in cached.state_dict().items():
        torch.testing.assert_close(value, trained[key], rtol=1e-5, atol=1e-6, msg=key)
    stats = cached.prefix_cache.stats
    assert stats.hits > 0, "later epochs must read the frozen prefix from the cache"
    assert stats.misses > 0
