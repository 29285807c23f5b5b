"""Classification on pooled backbone features: a linear head, cross-entropy, accuracy and macro F1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from ..backbones import Backbone
from .base import AdapterTaskModule


class ClassificationModule(AdapterTaskModule):
    """Images, audio clips or sentences -> ``num_classes`` labels, from ``backbone(batch)`` (B x feature_dim).

    Logs ``train_loss``, ``val_loss``, ``{train,val}_acc`` and ``{train,val}_f1`` (macro); after each validation
    epoch ``confusion_matrix`` holds the counts (rows: true class, columns: predicted).
    """

    task_kind = "classification"
    """What ``task.json`` calls this task (:mod:`mm_adapters.lightning.task_description`)."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 0,
        backbone_dropout: bool = False,
        class_names: Sequence[str] | None = None,
        prefix_cache: bool = False,
    ) -> None:
        super().__init__(backbone, lr, weight_decay, warmup_steps, backbone_dropout, prefix_cache)
        self.save_hyperparameters(ignore=["backbone"])
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes.")
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        self.head = nn.Linear(backbone.feature_dim, num_classes)
        metrics = MetricCollection(
            {
                "acc": MulticlassAccuracy(num_classes, average="micro"),
                "f1": MulticlassF1Score(num_classes, average="macro"),
            }
        )
        self.train_metrics = metrics.clone(prefix="train_")
        self.val_metrics = metrics.clone(prefix="val_")
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        self.confusion_matrix: torch.Tensor | None = None

    def forward(self, batch: dict) -> torch.Tensor:
        """Class logits, B x num_classes."""
        return self.head(self.backbone(batch))

    def checked_labels(self, batch: dict) -> torch.Tensor:
        """The batch's labels, checked against the head before they reach the loss (an out-of-range label makes
        cross-entropy fail with an opaque index error, or a device-side assert on a GPU)."""
        labels, classes = batch["labels"], self.head.out_features
        outside = labels[(labels < 0) | (labels >= classes)]
        if outside.numel():
            raise ValueError(
                f"Label {outside[0].item()} in this batch is outside 0..{classes - 1}: the head has {classes} "
                "classes. Check the labels, or build the module with the right num_classes."
            )
        return labels

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        labels = self.checked_labels(batch)
        with self.cached_prefix(batch, "train"):
            logits = self(batch).float()
        loss = F.cross_entropy(logits, labels)
        self.train_metrics.update(logits, labels)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(logits))
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, batch_size=len(logits))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        labels = self.checked_labels(batch)
        with self.cached_prefix(batch, "val"):
            logits = self(batch).float()
        self.val_metrics.update(logits, labels)
        self.val_confusion.update(logits, labels)
        self.log("val_loss", F.cross_entropy(logits, labels), prog_bar=True, batch_size=len(logits))
        self.log_dict(self.val_metrics, on_epoch=True, prog_bar=True, batch_size=len(logits))

    def on_validation_epoch_end(self) -> None:
        self.confusion_matrix = self.val_confusion.compute().cpu()
        self.val_confusion.reset()
