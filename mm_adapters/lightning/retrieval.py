"""Image-text retrieval: symmetric InfoNCE at the model's logit scale, recall@K on the validation set."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Backbone
from .base import AdapterTaskModule
from .losses import contrastive_loss
from .recall import retrieval_recall


class RetrievalModule(AdapterTaskModule):
    """Trains the adapters of a CLIP-style backbone on (image, caption) batches with ``image_ids``.

    Validation embeds every row, then logs ``val_{i2t,t2i}_recall@K`` for K in ``recall_at`` and their mean as
    ``val_mean_recall`` over the whole validation set (one process; embeddings are gathered on its device).

    ``feature_adapters`` (e.g. an ``"image"`` and a ``"text"`` :class:`~mm_adapters.composition.FeatureAdapter`,
    CLIP-Adapter) are applied to the final embeddings, which are then L2-normalised again; they are trained, kept
    in checkpoints and exported as the module's ``head``.
    """

    task_kind = "retrieval"
    """What ``task.json`` calls this task (:mod:`mm_adapters.lightning.task_description`)."""

    def __init__(
        self,
        backbone: Backbone,
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        backbone_dropout: bool = False,
        recall_at: Sequence[int] = (1, 5, 10),
        feature_adapters: dict[str, nn.Module] | None = None,
    ) -> None:
        super().__init__(backbone, lr, weight_decay, warmup_steps, backbone_dropout)
        self.save_hyperparameters(ignore=["backbone", "feature_adapters"])
        if feature_adapters is not None and set(feature_adapters) != {"image", "text"}:
            raise ValueError(
                f"feature_adapters needs an 'image' and a 'text' module, got {sorted(feature_adapters)}."
            )
        self.head = None if feature_adapters is None else nn.ModuleDict(feature_adapters)
        self.recall_at = tuple(recall_at)
        self._val_rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised (image, text) embeddings, each B x E."""
        images, texts = self.backbone.encode_image(batch["pixel_values"]), self.backbone.encode_text(batch)
        if self.head is None:
            return images, texts
        return F.normalize(self.head["image"](images), dim=-1), F.normalize(self.head["text"](texts), dim=-1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images, texts = self(batch)
        loss = contrastive_loss(images, texts, batch["image_ids"], self.backbone.logit_scale)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_rows = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        images, texts = self(batch)
        loss = contrastive_loss(images, texts, batch["image_ids"], self.backbone.logit_scale)
        self.log("val_loss", loss, prog_bar=True, batch_size=len(images))
        self._val_rows.append((images.float(), texts.float(), batch["image_ids"]))

    def on_validation_epoch_end(self) -> None:
        if not self._val_rows:
            return
        recalls = self._recalls(self._val_rows)
        self._val_rows = []
        self.log_dict({f"val_{name}": value for name, value in recalls.items()}, prog_bar=False)

    @torch.no_grad()
    def evaluate_recall(self, dataloader: Iterable[dict]) -> dict[str, float]:
        """Recall@K (and their mean) over a whole dataloader, outside the trainer and its logs: e.g. on training
        images before and after fitting, to see what the adapters learned."""
        was_training, rows = self.training, []
        self.eval()
        for batch in dataloader:
            batch = {
                key: value.to(self.device) if torch.is_tensor(value) else value
                for key, value in batch.items()
            }
            images, texts = self(batch)
            rows.append((images.float(), texts.float(), batch["image_ids"]))
        self.train(was_training)
        return self._recalls(rows)

    def _recalls(self, rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        images, texts, image_ids = (torch.cat(parts) for parts in zip(*rows, strict=True))
        recalls = retrieval_recall(images, texts, image_ids, self.recall_at)
        recalls["mean_recall"] = sum(recalls.values()) / len(recalls)
        return recalls
