"""CTranslate2 Whisper -> transformers: a tiny random Whisper written by ctranslate2's own converter converts back
to the same model; the binary reader round-trips; bad files fail clearly; the cache converts once."""

import importlib.util
import json
import struct

import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration

from mm_adapters.backbones.ct2_format import CT2FormatError, CT2Model, read_ct2_model, write_ct2_model
from mm_adapters.backbones.whisper_ct2 import MANIFEST, cached_whisper_folder, convert_ct2_whisper

from tiny_backbones import whisper_config

HAS_CT2 = importlib.util.find_spec("ctranslate2") is not None


def _tiny_whisper(seed: int = 0) -> WhisperForConditionalGeneration:
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(whisper_config()).eval()
    with torch.no_grad():  # layer norms start at 1/0, which CT2 would alias; make every weight distinct
        for name, parameter in model.named_parameters():
            if "layer_norm" in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    return model


def _ct2_with_ctranslate2(model, folder, quantization: str) -> None:
    """Write ``model`` as CTranslate2 does (its WhisperLoader; no tokenizer, so a placeholder vocabulary)."""
    from ctranslate2.converters.transformers import WhisperLoader

    loader = WhisperLoader()
    with torch.no_grad():
        spec = loader.get_model_spec(model)
        loader.set_config(spec.config, model, None)
    spec.register_vocabulary([f"token{i}" for i in range(model.config.vocab_size)])
    spec.validate()
    spec.optimize(quantization=quantization)
    folder.mkdir()
    spec.save(str(folder))


def _outputs(model, features, decoder_ids):
    with torch.no_grad():
        out = model(input_features=features, decoder_input_ids=decoder_ids)
    return out.encoder_last_hidden_state, out.logits


@pytest.mark.skipif(not HAS_CT2, reason="ctranslate2 (a dev dependency) is not installed")
@pytest.mark.parametrize("quantization,tolerance", [("float32", 1e-5), ("float16", 2e-2)])
def test_ctranslate2_model_converts_back_to_the_same_whisper(tmp_path, quantization, tolerance):
    source = _tiny_whisper()
    _ct2_with_ctranslate2(source, tmp_path / "ct2", quantization)
    assert read_ct2_model(tmp_path / "ct2").spec_name == "WhisperSpec"
    folder = convert_ct2_whisper(tmp_path / "ct2", tmp_path / "hf")
    converted = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    assert converted.config.encoder_attention_heads == 4 and converted.config.max_source_positions == 10
    assert converted.proj_out.weight.data_ptr() == converted.model.decoder.embed_tokens.weight.data_ptr()
    features = torch.randn(2, 8, 20, generator=torch.Generator().manual_seed(0))
    decoder_ids = torch.tensor([[1, 5, 7, 9], [1, 3, 4, 8]])
    for actual, expected in zip(
        _outputs(converted, features, decoder_ids), _outputs(source, features, decoder_ids), strict=True
    ):
        torch.testing.assert_close(actual, expected, rtol=0, atol=tolerance)


@pytest.mark.skipif(not HAS_CT2, reason="ctranslate2 (a dev dependency) is not installed")
def test_converted_encoder_matches_ctranslate2_runtime(tmp_path):
    import ctranslate2

    _ct2_with_ctranslate2(_tiny_whisper(), tmp_path / "ct2", "float32")
    converted = WhisperForConditionalGeneration.from_pretrained(
        convert_ct2_whisper(tmp_path / "ct2", tmp_path / "hf")
    )
    features = torch.randn(1, 8, 20, generator=torch.Generator().manual_seed(1))
    runtime = ctranslate2.models.Whisper(str(tmp_path / "ct2"), device="cpu", intra_threads=1)
    expected = np.array(runtime.encode(ctranslate2.StorageView.from_array(features.numpy()), to_cpu=True))
    with torch.no_grad():
        actual = converted.model.encoder(features).last_hidden_state.numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4)


def test_binary_round_trip_keeps_dtypes_shapes_and_aliases(tmp_path):
    shared = np.arange(6, dtype=np.float16).reshape(2, 3)
    model = CT2Model(
        "WhisperSpec", 3,
        {"a/weight": shared, "b/weight": shared, "c/bias": np.ones(4, np.float32), "n": np.array(6, np.int16)},
    )  # fmt: skip
    read = read_ct2_model(write_ct2_model(tmp_path / "model.bin", model))
    assert (read.spec_name, read.revision) == ("WhisperSpec", 3)
    assert read.variables["a/weight"].dtype == np.float16 and read.variables["a/weight"].shape == (2, 3)
    assert read.variables["b/weight"] is read.variables["a/weight"]  # stored once, as an alias
    assert int(read.variables["n"]) == 6
    np.testing.assert_array_equal(read.variables["c/bias"], np.ones(4))


def test_truncated_or_foreign_files_are_refused(tmp_path):
    path = write_ct2_model(tmp_path / "model.bin", CT2Model("WhisperSpec", 3, {"w": np.ones(8, np.float32)}))
    data = path.read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-12])
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2_model(tmp_path / "cut.bin")
    (tmp_path / "old.bin").write_bytes(struct.pack("<I", 5) + data[4:])
    with pytest.raises(CT2FormatError, match="binary version 5"):
        read_ct2_model(tmp_path / "old.bin")
    write_ct2_model(tmp_path / "other.bin", CT2Model("TransformerSpec", 1, {"w": np.ones(2, np.float32)}))
    (tmp_path / "other").mkdir()
    (tmp_path / "other.bin").rename(tmp_path / "other" / "model.bin")
    with pytest.raises(CT2FormatError, match="Expected a CTranslate2 WhisperSpec"):
        convert_ct2_whisper(tmp_path / "other", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-written is left behind


def test_quantised_models_are_refused_with_what_to_do(tmp_path):
    (tmp_path / "q").mkdir()
    variables = {
        "encoder/conv1/weight": np.ones((2, 2, 3), np.int8),
        "encoder/conv1/weight_scale": np.ones(2, np.float32),
    }
    write_ct2_model(tmp_path / "q" / "model.bin", CT2Model("WhisperSpec", 3, variables))
    with pytest.raises(CT2FormatError, match="quantised.*float16 or float32"):
        convert_ct2_whisper(tmp_path / "q", tmp_path / "out")


def _hand_written_ct2(folder, model) -> None:
    """A minimal CT2 Whisper written with our writer (fused attention, aliased projection), without ctranslate2."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    variables = {"encoder/num_heads": np.array(4, np.int16), "decoder/num_heads": np.array(4, np.int16)}

    def linear(ct2, *hf):
        weights = [sd[f"{h}.weight"] for h in hf]
        biases = [
            np.zeros(w.shape[0], np.float32) if h.endswith("k_proj") else sd[f"{h}.bias"]
            for h, w in zip(hf, weights, strict=True)
        ]
        variables[f"{ct2}/weight"], variables[f"{ct2}/bias"] = np.concatenate(weights), np.concatenate(biases)

    def norm(ct2, hf):
        variables[f"{ct2}/gamma"], variables[f"{ct2}/beta"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    for part in ("encoder", "decoder"):
        variables[f"{part}/position_encodings/encodings"] = sd[f"model.{part}.embed_positions.weight"]
        norm(f"{part}/layer_norm", f"model.{part}.layer_norm")
        for i in range(2):
            hf, ct2 = f"model.{part}.layers.{i}", f"{part}/layer_{i}"
            norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            linear(f"{ct2}/self_attention/linear_0", *(f"{hf}.self_attn.{p}_proj" for p in "qkv"))
            linear(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
            linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
            if part == "decoder":
                norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
                linear(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                linear(f"{ct2}/attention/linear_1", f"{hf}.encoder_attn.k_proj", f"{hf}.encoder_attn.v_proj")
                linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
    for conv in ("conv1", "conv2"):
        variables[f"encoder/{conv}/weight"], variables[f"encoder/{conv}/bias"] = (
            sd[f"model.encoder.{conv}.weight"],
            sd[f"model.encoder.{conv}.bias"],
        )
    variables["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    variables["decoder/projection/weight"] = variables["decoder/embeddings/weight"]
    folder.mkdir()
    write_ct2_model(folder / "model.bin", CT2Model("WhisperSpec", 3, variables))
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [3], "suppress_ids_begin": [2]}))


def test_cache_converts_once_and_reconverts_a_corrupted_folder(tmp_path, monkeypatch):
    source = _tiny_whisper()
    _hand_written_ct2(tmp_path / "ct2", source)
    folder = cached_whisper_folder(tmp_path / "ct2", tmp_path / "cache")
    assert json.loads((folder / MANIFEST).read_text())["sha256"]
    assert json.loads((folder / "generation_config.json").read_text())["suppress_tokens"] == [3]
    features, ids = torch.randn(1, 8, 20), torch.tensor([[1, 4, 6]])
    converted = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    for actual, expected in zip(
        _outputs(converted, features, ids), _outputs(source, features, ids), strict=True
    ):
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)

    def no_conversion(*_):
        raise AssertionError("converted again although the cache is valid")

    with monkeypatch.context() as patch:
        patch.setattr("mm_adapters.backbones.whisper_ct2.convert_ct2_whisper", no_conversion)
        assert cached_whisper_folder(tmp_path / "ct2", tmp_path / "cache") == folder
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    assert cached_whisper_folder(tmp_path / "ct2", tmp_path / "cache") == folder
    reloaded = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    torch.testing.assert_close(
        _outputs(reloaded, features, ids)[1], _outputs(source, features, ids)[1], rtol=0, atol=1e-5
    )
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.name]  # no staging folders left
