"""Speech recognition with the backbone's own decoder (Whisper): teacher-forced cross-entropy on the transcript
tokens, greedy decoding for the validation word error rate and exact-match accuracy."""

from __future__ import annotations

import re

import torch
from torchmetrics import MeanMetric
from torchmetrics.text import WordErrorRate

from ..backbones import Backbone
from .base import AdapterTaskModule

_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def normalize_transcript(text: str) -> str:
    """Lower case, no punctuation, single spaces, and single digits as words ("3." -> "three"), so that
    "Three." and "3" both count as "three"."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()
    return " ".join(_NUMBER_WORDS[int(w)] if w.isdigit() and len(w) == 1 else w for w in words)


class SpeechSeq2SeqModule(AdapterTaskModule):
    """Whisper-style encoder-decoder ASR. The backbone's model must be a ``WhisperForConditionalGeneration`` (on
    its own 30 s window, see :func:`mm_adapters.backbones.load_whisper_seq2seq`) and its preprocessing must carry
    the tokenizer. Batches are those of :class:`mm_adapters.data.CTCCollator` (raw audio and ``transcripts``).

    ``prompt`` is text given to the decoder as previous context (Whisper's ``prompt_ids``), e.g. the words to
    expect. Logs ``train_loss``, ``val_loss``, ``val_wer`` and ``val_word_acc`` (exact match after
    :func:`normalize_transcript`); ``last_predictions`` keeps a few (reference, prediction) pairs.
    """

    def __init__(
        self,
        backbone: Backbone,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        prompt: str | None = None,
        max_new_tokens: int = 16,
    ) -> None:
        super().__init__(backbone, lr, weight_decay, warmup_steps)
        self.save_hyperparameters(ignore=["backbone"])
        if (
            backbone.tokenizer is None
            or not hasattr(backbone.model, "generate")
            or not hasattr(backbone, "log_mel")
        ):
            raise TypeError(
                "SpeechSeq2SeqModule needs a speech encoder-decoder backbone with its tokenizer, e.g. "
                f"mm_adapters.backbones.load_whisper_seq2seq(...); got {backbone.name!r} ({backbone.family})."
            )
        self.prompt, self.max_new_tokens = prompt, max_new_tokens
        self.val_wer, self.val_word_acc = WordErrorRate(), MeanMetric()
        self.last_predictions: list[tuple[str, str]] = []

    # -- targets and decoding ----------------------------------------------------------------------------------
    def labels(self, transcripts: list[str]) -> torch.Tensor:
        """Token targets B x L (-100 padding): the tokenizer's ``<|notimestamps|> text <|endoftext|>``; the model
        shifts them right behind its decoder start token."""
        tokenizer = self.backbone.tokenizer
        start = self.backbone.model.config.decoder_start_token_id
        rows = [tokenizer(" " + text.strip()).input_ids for text in transcripts]
        rows = [row[1:] if row and row[0] == start else row for row in rows]
        labels = torch.full((len(rows), max(map(len, rows))), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            labels[i, : len(row)] = torch.tensor(row)
        return labels.to(self.device)

    def transcribe(self, features: torch.Tensor) -> list[str]:
        """Greedy decoding of log-mel ``features`` (B x mel x window), with ``prompt`` as context when set."""
        tokenizer = self.backbone.tokenizer
        options: dict = {"max_new_tokens": self.max_new_tokens, "num_beams": 1, "do_sample": False}
        if self.prompt:
            options["prompt_ids"] = torch.as_tensor(
                tokenizer.get_prompt_ids(self.prompt), device=features.device
            )
        tokens = self.backbone.model.generate(features, **options)
        texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
        if self.prompt:  # generate returns the prompt in front of the transcript
            texts = [text.split(self.prompt.strip(), 1)[-1] for text in texts]
        return [text.strip() for text in texts]

    # -- steps ---------------------------------------------------------------------------------------------------
    def _loss(self, features: torch.Tensor, transcripts: list[str]) -> torch.Tensor:
        return self.backbone.model(input_features=features, labels=self.labels(transcripts)).loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        features, _ = self.backbone.log_mel(batch)
        loss = self._loss(features, batch["transcripts"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(features))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        features, _ = self.backbone.log_mel(batch)
        references = [normalize_transcript(text) for text in batch["transcripts"]]
        self.log("val_loss", self._loss(features, batch["transcripts"]), batch_size=len(features))
        predictions = [normalize_transcript(text) for text in self.transcribe(features)]
        self.val_wer.update(predictions, references)
        self.val_word_acc.update(
            torch.tensor(
                [float(p == r) for p, r in zip(predictions, references, strict=True)], device=self.device
            )
        )
        self.log_dict(
            {"val_wer": self.val_wer, "val_word_acc": self.val_word_acc},
            prog_bar=True,
            batch_size=len(features),
        )
        if batch_idx == 0:
            self.last_predictions = list(zip(batch["transcripts"], predictions, strict=True))[:8]
