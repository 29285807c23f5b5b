"""Speech recognition with CTC: a linear head over frame features, greedy decoding, WER and CER."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.text import CharErrorRate, WordErrorRate

from ..backbones import Backbone
from ..data.vocabulary import CharVocabulary
from .base import AdapterTaskModule


class CTCModule(AdapterTaskModule):
    """Frame features (``backbone.frames``) -> per-frame character logits; id 0 is the CTC blank, id ``i`` is
    ``chars[i - 1]`` (the convention of :class:`mm_adapters.data.CharVocabulary`; pass its ``chars``).

    Logs ``train_loss``, ``val_loss``, ``val_wer`` and ``val_cer``; ``last_predictions`` keeps a few decoded
    validation transcripts next to their references.
    """

    task_kind = "ctc"
    """What ``task.json`` calls this task (:mod:`mm_adapters.lightning.task_description`)."""

    def __init__(
        self,
        backbone: Backbone,
        chars: Sequence[str],
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        backbone_dropout: bool = False,
        prefix_cache: bool = False,
    ) -> None:
        super().__init__(backbone, lr, weight_decay, warmup_steps, backbone_dropout, prefix_cache)
        self.save_hyperparameters(ignore=["backbone"])
        self.vocabulary = CharVocabulary(tuple(chars))
        self.head = nn.Linear(backbone.feature_dim, len(self.vocabulary))
        self.val_wer, self.val_cer = WordErrorRate(), CharErrorRate()
        self.last_predictions: list[tuple[str, str]] = []

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame log-probabilities (B x T' x vocabulary, float32) and the valid frames per sample."""
        hidden, lengths = self.backbone.frames(batch)
        return self.head(hidden).float().log_softmax(dim=-1), lengths

    def ctc_loss(self, log_probs: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        targets = labels.clamp(min=0)  # -100 padding lies beyond each target length, where CTC does not read
        target_lengths = (labels >= 0).sum(dim=1)
        return F.ctc_loss(
            log_probs.transpose(0, 1), targets, lengths, target_lengths,
            blank=self.vocabulary.blank_id, zero_infinity=True,
        )  # fmt: skip

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy decoding: the best id per frame, repeats merged, blanks dropped."""
        best = log_probs.argmax(dim=-1).cpu()
        return [
            self.vocabulary.decode_ctc(row[:length])
            for row, length in zip(best, lengths.tolist(), strict=True)
        ]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        with self.cached_prefix(batch, "train"):
            log_probs, lengths = self(batch)
        loss = self.ctc_loss(log_probs, lengths, batch["labels"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(log_probs))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        with self.cached_prefix(batch, "val"):
            log_probs, lengths = self(batch)
        self.log("val_loss", self.ctc_loss(log_probs, lengths, batch["labels"]), batch_size=len(log_probs))
        predictions = self.decode(log_probs, lengths)
        self.val_wer.update(predictions, batch["transcripts"])
        self.val_cer.update(predictions, batch["transcripts"])
        self.log_dict(
            {"val_wer": self.val_wer, "val_cer": self.val_cer}, prog_bar=True, batch_size=len(log_probs)
        )
        if batch_idx == 0:
            self.last_predictions = list(zip(batch["transcripts"], predictions, strict=True))[:8]
