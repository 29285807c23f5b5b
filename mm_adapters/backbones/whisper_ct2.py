"""CTranslate2 Whisper (``WhisperSpec``) -> a transformers ``WhisperForConditionalGeneration`` folder.

CTranslate2 fuses q|k|v of self-attention into ``self_attention/linear_0`` and k|v of cross-attention into
``attention/linear_1`` (with a zero k bias: Whisper's ``k_proj`` has none), and aliases the output projection to the
decoder embeddings. Everything else maps one to one. :func:`cached_whisper_folder` converts once into a cache
folder (one atomic rename, a checksum of the weights) and later calls only verify and return it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from ..atomic import write_directory_atomically
from .ct2_format import CT2FormatError, CT2Model, read_ct2_model

SPEC_NAME, SPEC_REVISION = "WhisperSpec", 3
MANIFEST = "mm_adapters_conversion.json"
_CONVERTER_VERSION = 1  # bump when the output of the conversion changes: old cache folders are then ignored


def ct2_to_transformers(model: CT2Model) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``WhisperConfig`` arguments and the float32 state dict of ``WhisperForConditionalGeneration``."""
    if (model.spec_name, model.revision) != (SPEC_NAME, SPEC_REVISION):
        raise CT2FormatError(
            f"Expected a CTranslate2 {SPEC_NAME} revision {SPEC_REVISION}, got {model.spec_name} revision "
            f"{model.revision}."
        )
    quantised = sorted(name for name in model.variables if name.endswith(("weight_scale", "weight_zero")))
    if quantised:
        raise CT2FormatError(
            f"This CTranslate2 model is quantised ({quantised[0]}, ...); convert it with "
            "--quantization float16 or float32 to read it here."
        )
    source = dict(model.variables)
    state: dict[str, np.ndarray] = {}

    def take(name: str) -> np.ndarray:
        if name not in source:
            raise CT2FormatError(f"The CTranslate2 Whisper model has no variable {name!r}.")
        return np.asarray(source.pop(name), dtype=np.float32)

    def put(prefix: str, ct2: str) -> None:  # a linear or layer-norm: weight/bias or gamma/beta
        if f"{ct2}/gamma" in source:
            state[f"{prefix}.weight"], state[f"{prefix}.bias"] = take(f"{ct2}/gamma"), take(f"{ct2}/beta")
        else:
            state[f"{prefix}.weight"] = take(f"{ct2}/weight")
            if f"{ct2}/bias" in source:
                state[f"{prefix}.bias"] = take(f"{ct2}/bias")

    def put_split(prefixes: tuple[str, ...], ct2: str) -> None:  # un-fuse q|k|v or k|v; k has no bias
        weights = np.split(take(f"{ct2}/weight"), len(prefixes))
        biases = np.split(take(f"{ct2}/bias"), len(prefixes))
        for prefix, weight, bias in zip(prefixes, weights, biases, strict=True):
            state[f"{prefix}.weight"] = weight
            if prefix.endswith("k_proj"):
                if np.any(bias):
                    raise CT2FormatError(
                        f"{ct2}: the key bias is not zero, which Whisper's k_proj cannot hold."
                    )
            else:
                state[f"{prefix}.bias"] = bias

    encoder_layers = _count_layers(source, "encoder")
    decoder_layers = _count_layers(source, "decoder")
    for part in ("encoder", "decoder"):
        state[f"model.{part}.embed_positions.weight"] = take(f"{part}/position_encodings/encodings")
        put(f"model.{part}.layer_norm", f"{part}/layer_norm")
    for conv in ("conv1", "conv2"):
        put(f"model.encoder.{conv}", f"encoder/{conv}")
    for i in range(encoder_layers):
        hf, ct2 = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        _put_block(put, put_split, hf, ct2, cross=False)
    state["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    for i in range(decoder_layers):
        hf, ct2 = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        _put_block(put, put_split, hf, ct2, cross=True)
    projection = source.pop("decoder/projection/weight", None)
    if projection is not None and not np.array_equal(projection, state["model.decoder.embed_tokens.weight"]):
        raise CT2FormatError(
            "decoder/projection/weight differs from the decoder embeddings; Whisper ties them."
        )
    bias = source.pop("decoder/projection/bias", None)
    if bias is not None and np.any(bias):
        raise CT2FormatError("decoder/projection/bias is not zero; Whisper's proj_out has no bias.")
    options = _take_options(source)
    if source:
        raise CT2FormatError(f"Unexpected CTranslate2 Whisper variables: {sorted(source)[:5]}.")
    config = _config_arguments(state, options, encoder_layers, decoder_layers)
    return config, state


def convert_ct2_whisper(ct2_dir: str | Path, output_dir: str | Path) -> Path:
    """Write a transformers Whisper folder (config, generation config, safetensors weights, tokenizer, feature
    extractor) converted from the CTranslate2 model in ``ct2_dir`` into the new folder ``output_dir``."""
    ct2_dir = Path(ct2_dir)
    return write_directory_atomically(output_dir, lambda tmp: _fill(ct2_dir, tmp), overwrite=False)


def cached_whisper_folder(ct2_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The converted transformers folder for ``ct2_dir``: converted on first use, read from the cache after.

    The cache key is the converter version plus the size and modification time of ``model.bin``; a folder whose
    weights no longer match the checksum in its manifest is converted again.
    """
    ct2_dir = Path(ct2_dir)
    source = ct2_dir / "model.bin"
    if not source.is_file():
        raise FileNotFoundError(f"{ct2_dir} holds no CTranslate2 model.bin.")
    stat = source.stat()
    key = hashlib.sha256(
        f"{_CONVERTER_VERSION}:{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    )
    folder = Path(cache_dir or default_cache_dir()) / f"whisper-ct2-{key.hexdigest()[:16]}"
    if folder.is_dir():
        if _verified(folder):
            return folder
        shutil.rmtree(folder, ignore_errors=True)
    try:
        return convert_ct2_whisper(ct2_dir, folder)
    except FileExistsError:  # another process converted it meanwhile
        if _verified(folder):
            return folder
        raise


def default_cache_dir() -> Path:
    """``$MM_ADAPTERS_CACHE``, else ``$XDG_CACHE_HOME/mm_adapters``, else ``~/.cache/mm_adapters``."""
    if os.environ.get("MM_ADAPTERS_CACHE"):
        return Path(os.environ["MM_ADAPTERS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mm_adapters"


# -- internals ------------------------------------------------------------------------------------------------------
def _put_block(put, put_split, hf: str, ct2: str, cross: bool) -> None:
    put(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
    put_split(tuple(f"{hf}.self_attn.{p}_proj" for p in "qkv"), f"{ct2}/self_attention/linear_0")
    put(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
    if cross:
        put(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        put(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
        put_split((f"{hf}.encoder_attn.k_proj", f"{hf}.encoder_attn.v_proj"), f"{ct2}/attention/linear_1")
        put(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
    put(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
    put(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
    put(f"{hf}.fc2", f"{ct2}/ffn/linear_1")


def _count_layers(variables: dict, part: str) -> int:
    pattern = re.compile(rf"^{part}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in variables if (m := pattern.match(name))}
    if not indices or indices != set(range(len(indices))):
        raise CT2FormatError(
            f"The CTranslate2 Whisper model has no contiguous {part} layers ({sorted(indices)})."
        )
    return len(indices)


def _take_options(source: dict) -> dict:
    """Pop the scalar settings; refuse those a transformers Whisper cannot reproduce."""
    options = {name: source.pop(name) for name in [n for n in source if np.ndim(source[n]) == 0]}
    expected = {"decoder/pre_norm": 1, "decoder/scale_embeddings": 0, "decoder/alibi": 0}
    for name, value in expected.items():
        if name in options and int(options[name]) != value:
            raise CT2FormatError(f"{name} = {options[name]} is not what a Whisper model has ({value}).")
    return options


def _config_arguments(state: dict, options: dict, encoder_layers: int, decoder_layers: int) -> dict:
    vocab_size, d_model = state["model.decoder.embed_tokens.weight"].shape
    missing = [name for name in ("encoder/num_heads", "decoder/num_heads") if name not in options]
    if missing:
        raise CT2FormatError(f"The CTranslate2 Whisper model has no {missing[0]} (the attention head count).")
    return dict(
        vocab_size=int(vocab_size),
        num_mel_bins=int(state["model.encoder.conv1.weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=int(options["encoder/num_heads"]),
        decoder_attention_heads=int(options["decoder/num_heads"]),
        encoder_ffn_dim=int(state["model.encoder.layers.0.fc1.weight"].shape[0]),
        decoder_ffn_dim=int(state["model.decoder.layers.0.fc1.weight"].shape[0]),
        max_source_positions=int(state["model.encoder.embed_positions.weight"].shape[0]),
        max_target_positions=int(state["model.decoder.embed_positions.weight"].shape[0]),
    )


def _fill(ct2_dir: Path, out: Path) -> None:
    import torch
    from safetensors.numpy import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    arguments, state = ct2_to_transformers(read_ct2_model(ct2_dir))
    ct2_config = _read_json(ct2_dir / "config.json")
    special = _special_tokens(ct2_dir)
    config = WhisperConfig(**arguments, **_token_arguments(special))
    with torch.device("meta"):
        expected = WhisperForConditionalGeneration(config).state_dict()
    expected.pop("proj_out.weight")  # tied to the decoder embeddings
    _check_shapes(state, expected)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.architectures = ["WhisperForConditionalGeneration"]
    config.suppress_tokens = config.begin_suppress_tokens = None  # generation_config.json holds them
    config.save_pretrained(out)
    _write_json(out / "generation_config.json", _generation_config(config, special, ct2_config))
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out)
    if (ct2_dir / "tokenizer.json").is_file():
        shutil.copyfile(ct2_dir / "tokenizer.json", out / "tokenizer.json")
        _write_json(out / "tokenizer_config.json", _tokenizer_config(config))
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    _write_json(
        out / MANIFEST, {"converter_version": _CONVERTER_VERSION, "source": str(ct2_dir), "sha256": digest}
    )


def _check_shapes(state: dict, expected: dict) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise CT2FormatError(
            f"Converted Whisper weights do not fit WhisperForConditionalGeneration: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shapes {sorted(wrong)[:3]}."
        )


def _special_tokens(ct2_dir: Path) -> dict[str, int]:
    """Special token -> id, from a Hugging Face ``tokenizer.json`` or else CTranslate2's vocabulary file."""
    tokenizer = ct2_dir / "tokenizer.json"
    if tokenizer.is_file():
        added = _read_json(tokenizer).get("added_tokens", [])
        return {token["content"]: int(token["id"]) for token in added if token.get("special")}
    tokens: list[str] = []
    if (ct2_dir / "vocabulary.json").is_file():
        tokens = json.loads((ct2_dir / "vocabulary.json").read_text())
    elif (ct2_dir / "vocabulary.txt").is_file():
        tokens = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    return {token: i for i, token in enumerate(tokens) if token.startswith("<|") and token.endswith("|>")}


def _token_arguments(special: dict[str, int]) -> dict:
    """Token ids of the model config; None where the vocabulary has no such token (a test model)."""
    eos = special.get("<|endoftext|>")
    arguments = dict(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    if "<|startoftranscript|>" in special:  # an int field: left at its default otherwise
        arguments["decoder_start_token_id"] = special["<|startoftranscript|>"]
    return arguments


def _generation_config(config, special: dict[str, int], ct2_config: dict) -> dict:
    multilingual = config.vocab_size >= 51865
    generation = {
        "decoder_start_token_id": config.decoder_start_token_id,
        "bos_token_id": config.decoder_start_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        "max_length": config.max_target_positions,
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or []),
        "alignment_heads": ct2_config.get("alignment_heads") or [],
        "is_multilingual": multilingual,
        "return_timestamps": False,
    }
    for key, token in (
        ("no_timestamps_token_id", "<|notimestamps|>"),
        ("prev_sot_token_id", "<|startofprev|>"),
    ):
        if token in special:
            generation[key] = special[token]
    if multilingual:
        lang_ids = set(ct2_config.get("lang_ids") or [])
        generation["lang_to_id"] = {t: i for t, i in special.items() if i in lang_ids}
        generation["task_to_id"] = {
            task: special[f"<|{task}|>"] for task in ("transcribe", "translate") if f"<|{task}|>" in special
        }
    return generation


def _tokenizer_config(config) -> dict:
    return {
        "tokenizer_class": "WhisperTokenizer",
        "model_max_length": config.max_target_positions,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "errors": "replace",
    }


def _verified(folder: Path) -> bool:
    manifest = folder / MANIFEST
    weights = folder / "model.safetensors"
    if not manifest.is_file() or not weights.is_file():
        return False
    try:
        recorded = _read_json(manifest)
    except ValueError:
        return False
    return (
        recorded.get("converter_version") == _CONVERTER_VERSION
        and recorded.get("sha256") == hashlib.sha256(weights.read_bytes()).hexdigest()
    )


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
