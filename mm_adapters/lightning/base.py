"""What every task module shares: AdamW over the trainable parameters and checkpoints without the backbone.

A checkpoint holds the adapters, the head and the optimizer state, never the frozen backbone weights: a demo
checkpoint is kilobytes to a few megabytes, not the size of the backbone. To resume or reload, build the module
the same way (same backbone, same adapters), then pass the checkpoint to ``trainer.fit(..., ckpt_path=...)`` or
``Module.load_from_checkpoint(path, backbone=backbone, weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

import lightning as L
import torch

from ..backbones import Backbone
from ..injection import active_adapters, list_adapters
from ..speed import PrefixCache

ADAPTER_SEGMENT = ".adapters."


class AdapterTaskModule(L.LightningModule):
    """Base class of the task modules; holds the injected :class:`~mm_adapters.backbones.Backbone`."""

    task_kind = ""
    """What ``task.json`` calls the task: classification, retrieval, ctc or seq2seq (set by each subclass)."""

    def __init__(
        self,
        backbone: Backbone,
        lr: float,
        weight_decay: float,
        warmup_steps: int,
        backbone_dropout: bool = False,
        prefix_cache: bool | PrefixCache = False,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(
                f"backbone must be an mm_adapters.backbones.Backbone (from load_backbone or wrap_backbone), "
                f"got {type(backbone).__name__}."
            )
        self.backbone = backbone
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.backbone_dropout = backbone_dropout
        if prefix_cache and backbone_dropout:
            raise ValueError(
                "prefix_cache needs the frozen backbone in eval mode; drop backbone_dropout=True."
            )
        self.prefix_cache: PrefixCache | None = (
            prefix_cache if isinstance(prefix_cache, PrefixCache) else PrefixCache() if prefix_cache else None
        )

    # -- frozen-prefix feature cache ---------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self._attach_prefix_cache()

    def on_validation_start(self) -> None:
        self._attach_prefix_cache()

    def _attach_prefix_cache(self) -> None:
        """With ``prefix_cache``, the layers below the lowest adapter run once per sample (first epoch) and are
        read from the cache afterwards; attached once fit starts, when the adapters are in place."""
        cache = self.prefix_cache
        if cache is not None and not cache.attached:
            cache.store.device = self.device
            cache.attach(self.backbone.model)

    @contextmanager
    def cached_prefix(self, batch: dict, namespace: str) -> Iterator[None]:
        """Serve this batch's frozen-prefix outputs from the cache (keys: the batch's ``index`` rows)."""
        if self.prefix_cache is None or not self.prefix_cache.attached or "index" not in batch:
            with nullcontext():
                yield
            return
        with self.prefix_cache.batch(batch["index"], namespace=namespace):
            yield

    def on_train_start(self) -> None:
        """Also set the modes when fit starts: a run resumed part-way into an epoch skips ``on_train_epoch_start``
        for that epoch, and Lightning has put the whole module in train mode."""
        self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        """Run the frozen backbone in eval mode (no dropout or layer drop, so its features are deterministic)
        while the trainable parts (adapters, heads) train; ``backbone_dropout=True`` keeps the backbone in train
        mode instead, as full fine-tuning would."""
        if self.backbone_dropout:
            self.backbone.train()
            return
        self.backbone.eval()
        for module in self.backbone.modules():
            parameters = list(module.parameters())
            if parameters and all(p.requires_grad for p in parameters) and not module.training:
                module.train()

    # -- optimisation ------------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW over parameters with ``requires_grad``; linear warm-up, then cosine decay to zero."""
        parameters = [p for p in self.parameters() if p.requires_grad]
        if not parameters:
            raise ValueError("Nothing to train: no parameter requires grad. Add an adapter or a head first.")
        optimizer = torch.optim.AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.warmup_steps, total - 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- trainable-only checkpoints ----------------------------------------------------------------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """The module's state without the frozen backbone weights (adapters and the head stay)."""
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        frozen = self._frozen_backbone_keys()
        return type(state)((key, value) for key, value in state.items() if key[len(prefix) :] not in frozen)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load a trainable-only state; with ``strict``, every adapter/head tensor must be there and nothing else."""
        if strict:
            expected, known = set(self.state_dict()), set(super().state_dict())
            missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - known)
            if missing or unexpected:
                raise RuntimeError(
                    f"This checkpoint does not fit the module: missing {missing[:5]}, unexpected {unexpected[:5]}. "
                    "Build the module as in training (same backbone, adapter names and configs, head) first."
                )
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mm_adapters"] = {
            "backbone": self.backbone.name,
            "family": self.backbone.family,
            "adapters": {
                name: config.to_dict() for name, config in list_adapters(self.backbone.model).items()
            },
            "active": list(active_adapters(self.backbone.model)),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("mm_adapters", {}).get("adapters")
        current = {name: config.to_dict() for name, config in list_adapters(self.backbone.model).items()}
        if saved is not None and saved != current:
            raise RuntimeError(
                f"The checkpoint was trained with adapters {sorted(saved)} ({saved}) but this backbone has "
                f"{sorted(current)} ({current}); add the same adapters with mm_adapters.add_adapter first."
            )

    def _frozen_backbone_keys(self) -> set[str]:
        trainable = {name for name, p in self.named_parameters(remove_duplicate=False) if p.requires_grad}
        return {
            key
            for key in super().state_dict(keep_vars=True)
            if key.startswith("backbone.") and key not in trainable and ADAPTER_SEGMENT not in key
        }
