"""Bad input gets an error that says what was wrong and what to do (the cases not covered by test_core_api.py and
test_data_*.py; docs/errors.md lists them all)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_reliability import tiny_task

import mm_adapters as mma
from mm_adapters.backbones import load_backbone
from mm_adapters.data import AudioClassificationCollator, TextClassificationCollator

from tiny_backbones import hf_bert


def run_recipe(*argv: str) -> str:
    """Run recipes/vit_cifar.py in this process; return the message it exits with."""
    from recipes import vit_cifar

    with pytest.raises(SystemExit) as exit_info:
        vit_cifar.main(list(argv))
    return str(exit_info.value.code)


def save_images(folder: Path, classes: tuple[str, ...], splits: tuple[str, ...] = ("train", "test")) -> Path:
    for split in splits:
        for label in classes:
            (folder / split / label).mkdir(parents=True)
            for name in ("a.png", "b.png"):  # the local-data check wants 2 training images per class
                Image.new("RGB", (4, 4)).save(folder / split / label / name)
    return folder


def empty_folder(folder: Path) -> Path:
    folder.mkdir()
    return folder


# -- adapters and fusions -----------------------------------------------------------------------------------------
def test_activating_a_fusion_that_does_not_exist():
    model = hf_bert().model
    mma.add_adapter(model, "a")
    mma.add_adapter(model, "b")
    with pytest.raises(
        ValueError, match=r"No fusion over \['a', 'b'\]; add one with mm_adapters\.add_fusion"
    ):
        mma.set_active_adapters(model, mma.Fuse("a", "b"))
    mma.add_fusion(model, ["a", "b"])
    with pytest.raises(ValueError, match=r"No fusion named 'other'; this model has \['a-b'\]"):
        mma.set_active_adapters(model, mma.Fuse("a", "b", name="other"))
    with pytest.raises(ValueError, match=r"No adapter named \['zzz'\]"):
        mma.set_active_adapters(model, mma.BatchSplit("a", "zzz", batch_sizes=[1, 1]))


# -- training-time inputs -----------------------------------------------------------------------------------------
def test_labels_outside_the_head_are_named_before_the_loss():
    module = tiny_task()
    batch = {
        "pixel_values": torch.randn(2, 3, 32, 32),
        "labels": torch.tensor([0, 7]),
        "index": torch.arange(2),
    }
    with pytest.raises(ValueError, match=r"Label 7 in this batch is outside 0\.\.2: the head has 3 classes"):
        module.training_step(batch, 0)
    batch["labels"] = torch.tensor([-1, 0])
    with pytest.raises(ValueError, match=r"Label -1"):
        module.validation_step(batch, 0)


def test_an_unreadable_image_names_the_file(tmp_path):
    from mm_adapters.data import ImageTransform

    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"Cannot read image .*broken\.png.*convert it to PNG or JPEG"):
        ImageTransform(32)(tmp_path / "broken.png")


def test_empty_and_very_long_text_reach_the_model():
    backbone = load_backbone("demo-bert")
    collate = TextClassificationCollator(backbone.tokenizer, max_length=backbone.max_length, num_classes=2)
    rows = [{"text": "", "label": 0, "index": 0}, {"text": "word " * 5000, "label": 1, "index": 1}]
    with pytest.warns(UserWarning, match="truncated"):
        batch = collate(rows)
    assert batch["input_ids"].shape == (2, backbone.max_length)
    with torch.no_grad():
        features = backbone(batch)
    assert features.shape == (2, backbone.feature_dim) and torch.isfinite(features).all()


def test_audio_shorter_than_the_receptive_field_is_rejected_before_the_model():
    backbone = load_backbone("demo-wav2vec2")
    collate = AudioClassificationCollator(backbone.sample_rate, min_samples=backbone.min_samples)
    shortest = {"array": torch.randn(backbone.min_samples).numpy(), "sampling_rate": backbone.sample_rate}
    too_short = {**shortest, "array": shortest["array"][:-1]}
    batch = collate([{"path": shortest, "label": 0, "index": 0}])
    with torch.no_grad():
        assert backbone(batch).shape == (1, backbone.feature_dim)
    with pytest.raises(ValueError, match=f"fewer than min_samples={backbone.min_samples}.*Remove or pad"):
        collate([{"path": too_short, "label": 0, "index": 0}])


# -- recipes ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda root: root / "nowhere", "does not exist; check the path"),
        (
            lambda root: empty_folder(root / "empty"),
            r"holds neither a train.<ext> table nor image class folders",
        ),
        (
            lambda root: save_images(root / "one", ("cat",)),
            r"only one class \('cat'\); classification needs at least two",
        ),
    ],
    ids=["missing", "empty", "one-class"],
)
def test_a_bad_dataset_folder_through_the_recipe(tmp_path, make, expected):
    message = run_recipe(
        "--preset", "demo", "--data", str(make(tmp_path)), "--output-dir", str(tmp_path / "out")
    )
    assert message.startswith("error: ") and re.search(expected, message), message


def test_resuming_a_run_made_with_other_settings(tmp_path):
    data = save_images(tmp_path / "data", ("cat", "dog"))
    common = [
        "--preset", "demo", "--data", str(data), "--output-dir", str(tmp_path / "out"), "--max-steps", "1",
    ]  # fmt: skip
    from recipes import vit_cifar

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vit_cifar.main([*common, "--placement", "pfeiffer"])
    message = run_recipe(*common, "--placement", "houlsby")
    assert "checkpoints/last.ckpt belongs to another run" in message
    assert "placement 'pfeiffer' there, 'houlsby' here" in message and "--resume none" in message
    assert "resume='" not in message  # the command line's flag, not the library argument
