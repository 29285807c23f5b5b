"""A stand-in Hugging Face cache: random models of the published backbones' real architectures, saved under the
published ids in the hub cache layout, and small local data sets for every recipe's ``--data``.

``build_cache(hf_home)`` writes ``<hf_home>/hub/models--ORG--NAME/snapshots/<hash>/...`` plus ``refs/main`` with
the real file names (config.json, model.safetensors, preprocessor_config.json, tokenizer files; for open_clip
open_clip_config.json and open_clip_model.safetensors) for:

- ``google/vit-base-patch16-224-in21k`` (ViTModel, 224 px, patch 16; 2 layers of width 32),
- ``bert-base-uncased`` (BertModel with a small WordPiece vocabulary, 2 layers of width 32),
- ``facebook/wav2vec2-base`` (Wav2Vec2Model with the base model's 7 conv layers, 2 transformer layers of width 32),
- ``timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k`` (timm's ViT-Tiny at its real size, 5.7M parameters),
- ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``, the repo open_clip resolves ``ViT-B-32`` + ``laion2b_s34b_b79k`` to
  (its pretrained table's ``hf_hub`` entry). open_clip builds that model from its own ``ViT-B-32`` config, not from
  the cache, so :func:`shrink_open_clip` first makes that config tiny (224 px, patch 32, 2 layers of width 64 per
  tower, the real 49,408-token vocabulary and 77-token context) in this process; without it the weights are the
  full 151M parameters and the run takes minutes on a CPU.

Running this file builds the cache and the data, runs each recipe's ``--preset full`` for two steps offline and
reloads its export, and writes one JSON line per recipe with the recipe's report and the reloaded validation
metrics: ``HF_HOME=<dir>/hf HF_HUB_OFFLINE=1 python tests/hf_standin.py <dir>``. It must run in its own process,
because the Hugging Face libraries read HF_HOME when they are imported.
"""

from __future__ import annotations

import json
import os
import sys
import wave
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SNAPSHOT = "0" * 39 + "1"  # any 40-hex commit hash
VIT, BERT, WAV2VEC2 = "google/vit-base-patch16-224-in21k", "bert-base-uncased", "facebook/wav2vec2-base"
TIMM_NAME = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
OPEN_CLIP_NAME, OPEN_CLIP_TAG = "ViT-B-32", "laion2b_s34b_b79k"
WORDS = "the a movie film was is good great fine bad awful dull sport game team market stock price world war".split()
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def snapshot(hf_home: Path, repo_id: str) -> Path:
    """The snapshot folder of ``repo_id`` in the hub cache layout, with ``refs/main`` pointing at it."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    folder = repo / "snapshots" / SNAPSHOT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_cache(hf_home: Path) -> dict[str, Path]:
    """Write every stand-in model; returns each repo id's snapshot folder."""
    torch.manual_seed(0)
    return {
        VIT: _vit(snapshot(hf_home, VIT)),
        BERT: _bert(snapshot(hf_home, BERT)),
        WAV2VEC2: _wav2vec2(snapshot(hf_home, WAV2VEC2)),
        f"timm/{TIMM_NAME}": _timm(snapshot(hf_home, f"timm/{TIMM_NAME}")),
        "open_clip": _open_clip(hf_home),
    }


def _vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    ViTModel(ViTConfig(image_size=224, patch_size=16, **TINY)).save_pretrained(folder)
    ViTImageProcessor(
        size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(folder)
    return folder


def _bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz.,!/"]
    (folder / "vocab.txt").write_text(
        "\n".join(vocabulary) + "\n"
    )  # as in the real repo, next to tokenizer.json
    BertTokenizer(vocab={token: i for i, token in enumerate(vocabulary)}, do_lower_case=True).save_pretrained(
        folder
    )
    BertModel(BertConfig(vocab_size=len(vocabulary), max_position_embeddings=128, **TINY)).save_pretrained(
        folder
    )
    return folder


def _wav2vec2(folder: Path) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, **TINY
    )
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=False).save_pretrained(folder)
    return folder


def _timm(folder: Path) -> Path:
    import timm

    timm.models.save_for_hf(
        timm.create_model(TIMM_NAME, pretrained=False), str(folder), safe_serialization=True
    )
    return folder


def shrink_open_clip() -> None:
    """Make open_clip's ``ViT-B-32`` config tiny in this process (same model classes, same input and vocabulary)."""
    from open_clip import factory

    factory._MODEL_CONFIGS[OPEN_CLIP_NAME] = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }


def _open_clip(hf_home: Path) -> Path:
    import open_clip
    from safetensors.torch import save_file

    repo_id = open_clip.get_pretrained_cfg(OPEN_CLIP_NAME, OPEN_CLIP_TAG)["hf_hub"].strip("/")
    folder = snapshot(hf_home, repo_id)
    model = open_clip.create_model(OPEN_CLIP_NAME)
    tensors = {key: value.detach().half().contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": open_clip.get_model_config(OPEN_CLIP_NAME), "preprocess_cfg": {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    return folder


# -- local data for every recipe's --data -----------------------------------------------------------------------------
def build_data(root: Path) -> dict[str, str]:
    """Small data sets in the local layouts the recipes read; returns each recipe's ``--data`` value."""
    return {
        "vit_cifar": str(_images(root / "images")),
        "bert_text": str(_sentences(root / "sst2", ("negative", "positive")) / "train.tsv"),
        "wav2vec_accent": str(_audio(root / "accent", ("train", "test"), "accent", ("us", "england"))),
        "wav2vec_asr": str(_audio(root / "asr", ("train.100", "validation"), "text", ("ZERO ONE", "TWO"))),
        "clip_retrieval": str(_coco(root / "coco")),
        "fusion_multitask": str(_fusion_tasks(root / "fusion")),
    }


def _images(root: Path) -> Path:
    """``train/<class>/`` (3 per class) and ``test/<class>/`` (2 per class) image folders."""
    colours = np.random.default_rng(0)
    for split, count in (("train", 3), ("test", 2)):
        for label in ("cat", "dog"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = colours.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return root


def _sentences(folder: Path, labels: tuple[str, ...]) -> Path:
    """``train.tsv`` (8 rows) and ``validation.tsv`` (4 rows) with a sentence and a label column."""
    folder.mkdir(parents=True)
    for split, count in (("train", 8), ("validation", 4)):
        rows = [
            f"{' '.join(WORDS[(i + j) % len(WORDS)] for j in range(5))}\t{labels[i % len(labels)]}"
            for i in range(count)
        ]
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return folder


def _audio(root: Path, splits: tuple[str, str], column: str, values: tuple[str, ...]) -> Path:
    """A ``save_to_disk`` DatasetDict with an ``audio`` column (16 kHz wav files) and a label/text column."""
    from datasets import Audio, Dataset, DatasetDict

    noise = np.random.default_rng(0)
    parts = {}
    for split, count in zip(splits, (4, 2), strict=True):
        paths = []
        for i in range(count):
            path = root / "wav" / f"{split}-{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            samples = (noise.standard_normal(8000) * 3000).astype(np.int16)
            with wave.open(str(path), "wb") as file:
                file.setnchannels(1), file.setsampwidth(2), file.setframerate(16000)
                file.writeframes(samples.tobytes())
            paths.append(str(path))
        rows = {"audio": paths, column: [values[i % len(values)] for i in range(count)]}
        parts[split] = Dataset.from_dict(rows).cast_column("audio", Audio(sampling_rate=16000, decode=False))
    DatasetDict(parts).save_to_disk(str(root / "dataset"))
    return root / "dataset"


def _coco(root: Path) -> Path:
    """COCO 2017 layout: ``train2017/`` (4 images), ``val2017/`` (2) and ``annotations/captions_*2017.json``."""
    (root / "annotations").mkdir(parents=True)
    colours = np.random.default_rng(1)
    for split, count in (("train2017", 4), ("val2017", 2)):
        (root / split).mkdir()
        images, captions = [], []
        for i in range(count):
            name = f"{i:012d}.jpg"
            Image.fromarray(colours.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(root / split / name)
            images.append({"id": i + 1, "file_name": name, "height": 24, "width": 24})
            for j in range(2):
                captions.append(
                    {"id": 10 * i + j, "image_id": i + 1, "caption": f"a photo of thing {i} number {j}"}
                )
        document = {"images": images, "annotations": captions}
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(document))
    return root


def _fusion_tasks(root: Path) -> Path:
    _sentences(root / "sst2", ("0", "1"))
    _sentences(root / "agnews", ("World", "Sports", "Business", "Sci/Tech"))
    return root


# -- the run ----------------------------------------------------------------------------------------------------------
FEW_STEPS = ["--max-steps", "2", "--batch-size", "2", "--resume", "none", "--devices", "1"]
RUNS = {  # recipe: extra options of the full preset run
    "vit_cifar": [],
    "vit_cifar_timm": ["--backbone", TIMM_NAME],
    "bert_text": [],
    "wav2vec_accent": [],
    "wav2vec_asr": [],
    "clip_retrieval": [],
    "fusion_multitask": ["--fusion-max-steps", "2", "--heatmap-sentences", "1"],
}


def run_all(root: Path) -> list[dict]:
    """Every recipe's ``--preset full`` for two steps on its local data, then its export reloaded and validated."""
    import importlib

    data = build_data(root / "data")
    results = []
    for name, extra in RUNS.items():
        recipe = name.removesuffix("_timm")
        argv = [
            "--preset",
            "full",
            "--data",
            data[recipe],
            "--output-dir",
            str(root / "runs" / name),
            *FEW_STEPS,
            *extra,
        ]
        module = importlib.import_module(f"recipes.{recipe}")
        report = module.main(argv)
        results.append(
            {"run": name, "argv": argv, "report": report, "reloaded": reload_metrics(module, argv, report)}
        )
    return results


def reload_metrics(module, argv: list[str], report: dict) -> dict[str, float]:
    """The validation metrics of a fresh backbone (loaded by the same name from the cache) with the export loaded
    by ``load_for_inference``, on the recipe's own validation data."""
    import lightning as L

    from mm_adapters import runner
    from mm_adapters.backbones import load_backbone
    from mm_adapters.lightning import ClassificationModule, CTCModule, RetrievalModule, load_for_inference

    config = runner.parse_config(module.Config, argv)
    backbone = load_backbone(config.backbone, pretrained=config.pretrained, max_length=config.max_length)
    recipe = module.__name__.rsplit(".", 1)[1]
    if recipe == "fusion_multitask":
        output = Path(config.output_dir)
        adapters = [output / "adapters" / task for task in module.TASKS]
        head = load_for_inference(backbone, output / module.FUSION, adapters=adapters)
        data = module.load_task(config.target, config, backbone)
        task = ClassificationModule(backbone, len(data.names), class_names=data.names)
        datamodule = runner.datamodule(config, data.train, data.val, data.collate)
    else:
        head = load_for_inference(backbone, Path(config.output_dir) / "adapter")
        loaded = module.load_data(config, backbone)
        datamodule, extra = loaded if isinstance(loaded, tuple) else (loaded, None)
        if recipe == "clip_retrieval":
            task = RetrievalModule(backbone, feature_adapters=None if head is None else dict(head))
        elif recipe == "wav2vec_asr":
            task = CTCModule(backbone, extra.chars)
        else:
            task = ClassificationModule(backbone, len(extra), class_names=extra)
    if head is not None and recipe != "clip_retrieval":
        task.head = head
    trainer = L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
    )
    metrics = trainer.validate(task, datamodule=datamodule, verbose=False)[0]
    return {key: round(float(value), 6) for key, value in metrics.items()}


if __name__ == "__main__":
    output = Path(sys.argv[1])
    shrink_open_clip()
    build_cache(Path(os.environ["HF_HOME"]))
    results = run_all(output)
    from mm_adapters.runner import parse_config
    from recipes import vit_cifar

    results.append(
        {"run": "preset_auto", "preset": parse_config(vit_cifar.Config, ["--preset", "auto"]).preset}
    )
    (output / "results.json").write_text(json.dumps(results, indent=2, default=str))
