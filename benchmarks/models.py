"""The four benchmark backbones at their real sizes, with random weights (compute does not depend on them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import transformers
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 10


@dataclass
class BenchModel:
    name: str
    build: Callable[[], nn.Module]
    make_inputs: Callable[[int, torch.device], dict]
    """(batch size, device) -> model inputs, plus ``labels`` for the head."""
    hidden_size: int | None
    """Width of the features the classification head reads; None when the model computes its own loss (CLIP)."""
    lora_targets: tuple[str, ...]
    adapterhub: bool
    """Whether AdapterHub ``adapters`` supports this model class."""

    def features(self, model: nn.Module, inputs: dict) -> torch.Tensor:
        """What inference returns: last hidden state (or both CLIP embeddings)."""
        if self.hidden_size is None:
            out = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"])
            return torch.cat([out.image_embeds, out.text_embeds])
        return model(**_model_args(inputs)).last_hidden_state

    def loss(self, model: nn.Module, head: nn.Module | None, inputs: dict) -> torch.Tensor:
        """A training loss: cross-entropy of a linear head on mean-pooled features, or CLIP's contrastive loss."""
        if self.hidden_size is None:
            return model(
                input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"], return_loss=True
            ).loss
        hidden = model(**_model_args(inputs)).last_hidden_state
        return F.cross_entropy(head(hidden.mean(dim=1).float()), inputs["labels"])


def _model_args(inputs: dict) -> dict:
    return {k: v for k, v in inputs.items() if k not in ("labels", "index")}


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _labels(batch: int, device: torch.device) -> torch.Tensor:
    return torch.randint(0, NUM_CLASSES, (batch,), generator=_generator()).to(device)


def bert_base(seq_len: int = 128) -> BenchModel:
    def build() -> nn.Module:
        torch.manual_seed(0)
        config = transformers.BertConfig()
        return transformers.BertModel(config, add_pooling_layer=False).eval()

    def make_inputs(batch: int, device: torch.device) -> dict:
        ids = torch.randint(1000, 30000, (batch, seq_len), generator=_generator())
        return {
            "input_ids": ids.to(device),
            "attention_mask": torch.ones_like(ids).to(device),
            "labels": _labels(batch, device),
        }

    return BenchModel(f"BERT-base (x {seq_len} tokens)", build, make_inputs, 768, ("query", "value"), True)


def vit_b16() -> BenchModel:
    def build() -> nn.Module:
        torch.manual_seed(0)
        config = transformers.ViTConfig()
        return transformers.ViTModel(config, add_pooling_layer=False).eval()

    def make_inputs(batch: int, device: torch.device) -> dict:
        pixels = torch.randn(batch, 3, 224, 224, generator=_generator())
        return {"pixel_values": pixels.to(device), "labels": _labels(batch, device)}

    return BenchModel("ViT-B/16 (224 px)", build, make_inputs, 768, ("query", "value"), True)


def wav2vec2_base(seconds: float = 1.0) -> BenchModel:
    samples = int(16000 * seconds)

    def build() -> nn.Module:
        torch.manual_seed(0)
        # No layer drop or SpecAugment masking: they make step time random and the prefix un-cacheable.
        config = transformers.Wav2Vec2Config(layerdrop=0.0, mask_time_prob=0.0, mask_feature_prob=0.0)
        return transformers.Wav2Vec2Model(config).eval()

    def make_inputs(batch: int, device: torch.device) -> dict:
        audio = torch.randn(batch, samples, generator=_generator())
        return {"input_values": audio.to(device), "labels": _labels(batch, device)}

    return BenchModel(f"Wav2Vec2-base ({seconds:g} s)", build, make_inputs, 768, ("q_proj", "v_proj"), False)


def clip_b32(text_len: int = 77) -> BenchModel:
    def build() -> nn.Module:
        torch.manual_seed(0)
        config = transformers.CLIPConfig(
            text_config={"max_position_embeddings": text_len},
            vision_config={"image_size": 224, "patch_size": 32},
        )
        return transformers.CLIPModel(config).eval()

    def make_inputs(batch: int, device: torch.device) -> dict:
        pixels = torch.randn(batch, 3, 224, 224, generator=_generator())
        ids = torch.randint(1, 49000, (batch, text_len), generator=_generator())
        return {"pixel_values": pixels.to(device), "input_ids": ids.to(device)}

    return BenchModel(
        f"CLIP ViT-B/32 (224 px + {text_len} tokens)", build, make_inputs, None, ("q_proj", "v_proj"), True
    )


MODELS: dict[str, Callable[[], BenchModel]] = {
    "bert": bert_base,
    "vit": vit_b16,
    "wav2vec2": wav2vec2_base,
    "clip": clip_b32,
}
