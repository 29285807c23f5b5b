"""Bytes a full-size run writes: a ViT-B/16 Pfeiffer run of vit_cifar and the stages of fusion_multitask on BERT-base.

    python benchmarks/checkpoint_sizes.py /tmp/sizes     # prints one JSON object; runs 1-2 steps on CPU

The backbones are random models of the published architectures (ViTConfig() and BertConfig() defaults, the sizes of
google/vit-base-patch16-224-in21k and bert-base-uncased), saved to local folders; the data are the small local sets
of tests/hf_standin.py. Sizes do not depend on the weights or the data: a checkpoint holds the trainable tensors and
their AdamW moments (fp32), an export the trainable tensors alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # `recipes` and the stand-in data builders

import hf_standin  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, BertModel, ViTConfig, ViTImageProcessor, ViTModel  # noqa: E402

from recipes import fusion_multitask, vit_cifar  # noqa: E402

FEW = ["--preset", "full", "--max-steps", "1", "--batch-size", "2", "--resume", "none"]


def folder_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def main(root: Path) -> dict:
    torch.manual_seed(0)
    data = hf_standin.build_data(root / "data")
    vit = root / "vit-base-patch16-224"
    ViTModel(ViTConfig()).save_pretrained(vit)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(vit)
    (root / "bert-base").mkdir()
    bert = hf_standin._bert(root / "bert-base")  # tokenizer files; then the base-size model over them
    vocabulary = len((bert / "vocab.txt").read_text().split())
    BertModel(BertConfig(vocab_size=vocabulary)).save_pretrained(bert)

    out = root / "runs"
    vit_report = vit_cifar.main(
        [*FEW, "--backbone", str(vit), "--data", data["vit_cifar"], "--output-dir", str(out / "vit")]
    )
    fusion_report = fusion_multitask.main(
        [*FEW, "--backbone", str(bert), "--data", data["fusion_multitask"], "--output-dir", str(out / "fusion"),
         "--fusion-max-steps", "1", "--heatmap-sentences", "1"]
    )  # fmt: skip
    stages = {
        **fusion_report["stage1"],
        "baseline": fusion_report["baseline"],
        "fusion": fusion_report["fusion"],
    }
    sizes = {
        "vit_b16_pfeiffer": {
            "trainable_params": vit_report["trainable_params"],
            "checkpoint_bytes": vit_report["checkpoint_bytes"],
            "export_bytes": folder_bytes(Path(vit_report["exported_adapter"])),
        },
        "bert_base_fusion": {
            name: {
                "trainable_params": stage["trainable_params"],
                "checkpoint_bytes": Path(stage["checkpoint"]).stat().st_size,
            }
            for name, stage in stages.items()
        },
        "bert_base_exports": {
            "adapters": {task: folder_bytes(Path(p)) for task, p in fusion_report["adapter_dirs"].items()},
            "fusion": folder_bytes(Path(fusion_report["fusion_dir"])),
        },
    }
    print(json.dumps(sizes, indent=2))
    return sizes


if __name__ == "__main__":
    main(Path(sys.argv[1]))
