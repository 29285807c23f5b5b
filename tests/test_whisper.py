"""The Whisper family: decoder cross-attention sites, encoder-only models, fusion and AdapterDrop, and the task
wrapper's short encoder window with pooling over the real frames."""

import pytest
import torch
from transformers import WhisperForAudioClassification, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

import mm_adapters as mma
from mm_adapters import AdapterConfig, AdapterSite, Fuse
from mm_adapters.backbones import HFWhisperBackbone, windowed_encoder, wrap_backbone
from mm_adapters.composition import dropped_layers
from mm_adapters.state import iter_sites

from tiny_backbones import LAYERS, hf_whisper, whisper_config


def _sites(model):
    return [(s.tower, s.layer_index, s.site) for s in iter_sites(model)]


def _randomised(tiny):
    with torch.no_grad():
        for site in iter_sites(tiny.model):
            for adapter in site.adapters.values():
                adapter.up.weight.normal_(0, 0.5)
    return tiny


def test_cross_attention_sites_are_in_the_decoder_only():
    tiny = hf_whisper()
    mma.add_adapter(tiny.model, "task", AdapterConfig.houlsby(sites=("attn", "cross_attn", "ffn")))
    sites = _sites(tiny.model)
    assert sorted(s for t, _, s in sites if t == "audio") == sorted(["attn", "ffn"] * LAYERS)
    assert sorted(s for t, _, s in sites if t == "text") == sorted(["attn", "cross_attn", "ffn"] * LAYERS)
    assert all(isinstance(layer.encoder_attn, AdapterSite) for layer in tiny.model.decoder.layers)


def test_cross_attention_adapters_start_as_identity_and_change_the_decoder_only():
    tiny = hf_whisper()
    tiny.model.requires_grad_(False)
    batch = tiny.make_batch(0)
    with torch.no_grad():
        base = tiny.model(**batch)
    mma.add_adapter(tiny.model, "task", AdapterConfig.pfeiffer(sites=("cross_attn",), reduction_factor=2))
    with torch.no_grad():
        torch.testing.assert_close(
            tiny.model(**batch).last_hidden_state, base.last_hidden_state, rtol=0, atol=1e-6
        )
        _randomised(tiny)
        adapted = tiny.model(**batch)
    torch.testing.assert_close(
        adapted.encoder_last_hidden_state, base.encoder_last_hidden_state, rtol=0, atol=0
    )
    assert not torch.allclose(adapted.last_hidden_state, base.last_hidden_state)


def test_cross_attention_on_an_encoder_only_model_is_refused():
    encoder = WhisperEncoder(whisper_config())
    with pytest.raises(ValueError, match="cross_attn"):
        mma.add_adapter(encoder, "task", AdapterConfig.pfeiffer(sites=("cross_attn",), reduction_factor=2))


@pytest.mark.parametrize(
    "build", [lambda c: WhisperEncoder(c), WhisperForAudioClassification, WhisperForConditionalGeneration]
)
def test_every_whisper_class_takes_adapters(build):
    model = build(whisper_config()).eval()
    mma.add_adapter(model, "task", AdapterConfig.parallel())
    towers = {tower for tower, _, _ in _sites(model)}
    expected = {"audio", "text"} if isinstance(model, WhisperForConditionalGeneration) else {"audio"}
    assert towers == expected
    assert all(".adapters.task." in n for n, p in model.named_parameters() if p.requires_grad)


def test_adapters_in_the_decoder_only_leave_the_encoder_alone():
    tiny = hf_whisper()
    mma.add_adapter(tiny.model, "task", AdapterConfig.houlsby(towers=("text",)))
    assert {tower for tower, _, _ in _sites(tiny.model)} == {"text"}


def test_fusion_over_whisper_adapters_trains_only_the_fusion():
    tiny = hf_whisper()
    for name in ("a", "b"):
        mma.add_adapter(tiny.model, name, AdapterConfig.pfeiffer(reduction_factor=2))
    _randomised(tiny)
    mma.add_fusion(tiny.model, ["a", "b"])
    mma.set_active_adapters(tiny.model, Fuse("a", "b"))
    trainable = [n for n, p in tiny.model.named_parameters() if p.requires_grad]
    assert trainable and all(".fusions." in n for n in trainable)
    out = tiny.run(tiny.model, tiny.make_batch(0))
    out.sum().backward()
    assert all(p.grad is not None for p in tiny.model.parameters() if p.requires_grad)


def test_adapter_drop_counts_whisper_towers_separately():
    tiny = hf_whisper()
    tiny.model.requires_grad_(False)
    batch = tiny.make_batch(0)
    with torch.no_grad():
        base = tiny.model(**batch).encoder_last_hidden_state
    mma.add_adapter(tiny.model, "task", AdapterConfig.houlsby(reduction_factor=2))
    _randomised(tiny)
    with torch.no_grad():
        assert not torch.allclose(tiny.model(**batch).encoder_last_hidden_state, base)
    mma.set_adapter_drop(tiny.model, LAYERS)
    assert dropped_layers(tiny.model) == {"audio": LAYERS, "text": LAYERS}
    with torch.no_grad():
        torch.testing.assert_close(tiny.model(**batch).encoder_last_hidden_state, base, rtol=0, atol=0)


# -- the task wrapper ----------------------------------------------------------------------------------------------
def test_windowed_encoder_keeps_the_weights_and_the_first_positions():
    model = WhisperForConditionalGeneration(whisper_config()).eval()
    short = windowed_encoder(model, seconds=0.1)  # 5 positions, 10 mel frames
    assert short.config.max_source_positions == 5 and model.config.max_source_positions == 10
    full = model.get_encoder()
    torch.testing.assert_close(short.embed_positions.weight, full.embed_positions.weight[:5], rtol=0, atol=0)
    torch.testing.assert_close(short.layers[0].fc1.weight, full.layers[0].fc1.weight, rtol=0, atol=0)
    assert short(torch.randn(1, 8, 10)).last_hidden_state.shape == (1, 5, 32)
    same = windowed_encoder(model, seconds=0.2)  # the model's own window: the same outputs
    features = torch.randn(2, 8, 20)
    with torch.no_grad():
        torch.testing.assert_close(same(features).last_hidden_state, full(features).last_hidden_state)


@pytest.mark.parametrize("seconds", [0.0, 0.03, 0.4])
def test_windowed_encoder_refuses_a_window_it_cannot_build(seconds):
    with pytest.raises(ValueError, match="multiple of 0.02"):
        windowed_encoder(WhisperEncoder(whisper_config()), seconds)


def _waveforms(*lengths: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    values = torch.zeros(len(lengths), max(lengths))
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        values[row, :length] = 0.1 * torch.randn(length, generator=generator)
        mask[row, :length] = 1
    return {"input_values": values, "attention_mask": mask}


def test_wrapper_pools_over_the_real_frames_and_ignores_batch_neighbours():
    backbone = wrap_backbone(WhisperEncoder(whisper_config()).eval())
    assert isinstance(backbone, HFWhisperBackbone) and backbone.window_frames == 20
    assert backbone.normalize_audio is False and backbone.sample_rate == 16_000
    batch = _waveforms(3200, 1600)  # 0.2 s (the whole window) and 0.1 s
    with torch.no_grad():
        hidden, lengths = backbone.frames(batch)
        pooled = backbone(batch)
        alone = backbone({k: v[1:, :1600] for k, v in batch.items()})
    assert lengths.tolist() == [10, 5]
    torch.testing.assert_close(pooled[1], hidden[1, :5].mean(0))
    torch.testing.assert_close(alone[0], pooled[1])


def test_wrapper_warns_when_a_clip_is_cut_to_the_window():
    backbone = wrap_backbone(WhisperEncoder(whisper_config()).eval())
    with pytest.warns(UserWarning, match="cut to the Whisper encoder's window of 0.2 s"), torch.no_grad():
        backbone(_waveforms(4800))


def test_wrapper_accepts_ready_log_mel_features():
    backbone = wrap_backbone(WhisperEncoder(whisper_config()).eval())
    features = torch.randn(2, 8, 20)
    mask = torch.zeros(2, 20, dtype=torch.long)
    mask[0, :20], mask[1, :7] = 1, 1
    with torch.no_grad():
        hidden, lengths = backbone.frames({"input_features": features, "feature_attention_mask": mask})
    assert lengths.tolist() == [10, 4]
    torch.testing.assert_close(hidden, backbone.model(features).last_hidden_state)


def test_parallel_tasks_cannot_branch_the_encoder_the_decoder_reads():
    tiny = hf_whisper()
    for name in ("a", "b"):
        mma.add_adapter(tiny.model, name, AdapterConfig.pfeiffer(towers=("audio",), reduction_factor=2))
    _randomised(tiny)
    with pytest.raises(ValueError, match="cannot branch the 'audio' tower"):
        mma.set_active_adapters(tiny.model, mma.Parallel("a", "b"))
