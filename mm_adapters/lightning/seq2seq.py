"""Speech recognition with the backbone's own decoder (Whisper): teacher-forced cross-entropy on the transcript
tokens, greedy decoding for the validation word error rate and exact-match accuracy."""

from __future__ import annotations

import re
from contextlib import nullcontext

import torch
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.text import WordErrorRate
from transformers.modeling_outputs import BaseModelOutput

from ..backbones import Backbone
from ..state import iter_sites
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
    the tokenizer. Batches are those of :class:`mm_adapters.data.TranscriptCollator` (raw audio, ``transcripts``).

    ``prompt`` is text given to the decoder as previous context (Whisper's ``prompt_ids``), e.g. the words to
    expect. ``cache_encoder`` keeps each clip's encoder output while the encoder has no active adapter (memory:
    frames x width floats per clip, 2.3 MB for tiny.en). Logs ``train_loss``, ``val_loss``, ``val_wer`` and
    ``val_word_acc`` (exact match after :func:`normalize_transcript`); ``last_predictions`` keeps a few
    (reference, prediction) pairs.
    """

    task_kind = "seq2seq"
    """What ``task.json`` calls this task (:mod:`mm_adapters.lightning.task_description`)."""

    def __init__(
        self,
        backbone: Backbone,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        prompt: str | None = None,
        max_new_tokens: int = 16,
        cache_encoder: bool = True,
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
        self.prompt, self.max_new_tokens, self.cache_encoder = prompt, max_new_tokens, cache_encoder
        self._encoder_cache: dict[tuple[str, int], torch.Tensor] = {}
        self.val_wer, self.val_word_acc = WordErrorRate(), MeanMetric()
        self.last_predictions: list[tuple[str, str]] = []

    # -- encoder outputs, targets and decoding -------------------------------------------------------------------
    def encode(self, batch: dict, stage: str = "") -> BaseModelOutput:
        """Encoder outputs for the batch. While no encoder adapter is active the encoder computes the frozen base
        model, and with ``cache_encoder`` each clip's output is kept (keyed by ``stage`` and the batch's
        ``index``): on Whisper's 30 s window the encoder is nearly all of the cost of decoder-only training."""
        encoder = self.backbone.encoder
        cacheable = self.cache_encoder and "index" in batch and not _adapts(encoder)
        keys = [(stage, int(i)) for i in batch["index"]] if cacheable else []
        if cacheable and all(key in self._encoder_cache for key in keys):
            hidden = torch.stack([self._encoder_cache[key] for key in keys]).to(self.device)
            return BaseModelOutput(last_hidden_state=hidden)
        features, _ = self.backbone.log_mel(batch)
        with torch.no_grad() if cacheable else nullcontext():
            hidden = encoder(features).last_hidden_state
        if cacheable:
            self._encoder_cache.update(zip(keys, hidden.detach(), strict=True))
        return BaseModelOutput(last_hidden_state=hidden)

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

    def transcribe(self, encoded: BaseModelOutput) -> list[str]:
        """Greedy decoding from encoder outputs (:meth:`encode`), with ``prompt`` as context when set."""
        tokenizer = self.backbone.tokenizer
        options: dict = {"max_new_tokens": self.max_new_tokens, "num_beams": 1, "do_sample": False}
        if self.prompt:
            prompt_ids = tokenizer.get_prompt_ids(self.prompt)
            options["prompt_ids"] = torch.as_tensor(prompt_ids, device=encoded.last_hidden_state.device)
        tokens = self.backbone.model.generate(encoder_outputs=encoded, **options)
        texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
        if self.prompt:  # the prompt may come back in front of the transcript
            texts = [text.split(self.prompt.strip(), 1)[-1] for text in texts]
        return [text.strip() for text in texts]

    # -- steps ---------------------------------------------------------------------------------------------------
    def loss(self, encoded: BaseModelOutput, transcripts: list[str]) -> torch.Tensor:
        return self.backbone.model(encoder_outputs=encoded, labels=self.labels(transcripts)).loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        encoded = self.encode(batch, "train")
        loss = self.loss(encoded, batch["transcripts"])
        self.log("train_loss", loss, prog_bar=True, batch_size=len(batch["transcripts"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        # trainer.validate runs in inference mode and fit's validation does not: metric states made in one cannot
        # be updated in place in the other (a zero-shot validate before fit), so each epoch starts fresh
        self.val_wer.reset()
        self.val_word_acc.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        encoded = self.encode(batch, "val")
        size = len(batch["transcripts"])
        references = [normalize_transcript(text) for text in batch["transcripts"]]
        self.log("val_loss", self.loss(encoded, batch["transcripts"]), batch_size=size)
        predictions = [normalize_transcript(text) for text in self.transcribe(encoded)]
        self.val_wer.update(predictions, references)
        correct = [float(p == r) for p, r in zip(predictions, references, strict=True)]
        self.val_word_acc.update(torch.tensor(correct, device=self.device))
        self.log_dict(
            {"val_wer": self.val_wer, "val_word_acc": self.val_word_acc}, prog_bar=True, batch_size=size
        )
        if batch_idx == 0:
            self.last_predictions = list(zip(batch["transcripts"], predictions, strict=True))[:8]


def _adapts(module: nn.Module) -> bool:
    """Whether any adapter in ``module`` is active (so its output is not the frozen base model's)."""
    return any(site.active and not site.dropped for site in iter_sites(module))
