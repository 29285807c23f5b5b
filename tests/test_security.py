"""Untrusted files cannot run code or write outside their folder: crafted adapter/fusion folders and checkpoints.

(A pickle dropped in place of adapter_model.safetensors is covered in test_core_api.py.)
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import lightning as L
import pytest
import torch
from test_reliability import collate, tiny_rows, tiny_task
from torch import nn

import mm_adapters as mma
from mm_adapters import AdapterLoadError
from mm_adapters.reliability import AtomicCheckpointIO, CheckpointError, check_checkpoint

from tiny_backbones import hf_bert


class Exploit:
    """Unpickling this writes ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "executed"))


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def saved(tmp_path):
    """An adapter folder and a fusion folder, inside ``tmp_path/untrusted``."""
    tiny = hf_bert()
    mma.add_adapter(tiny.model, "a")
    mma.add_adapter(tiny.model, "b")
    mma.add_fusion(tiny.model, ["a", "b"])
    root = tmp_path / "untrusted"
    mma.save_adapter(tiny.model, "a", root / "a")
    mma.save_fusion(tiny.model, "a-b", root / "fusion")
    return root


def fresh_with_adapters(root: Path) -> nn.Module:
    model = hf_bert().model
    mma.add_adapter(model, "a")
    mma.add_adapter(model, "b")
    return model


# -- Lightning checkpoints ----------------------------------------------------------------------------------------
def test_a_pickle_payload_checkpoint_never_runs(tmp_path):
    marker, evil = tmp_path / "pwned", tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "payload": Exploit(marker)}, evil)
    with pytest.raises(
        CheckpointError, match="pickled Python objects.*could run arbitrary code.*Unsupported global"
    ):
        AtomicCheckpointIO().load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        check_checkpoint(evil)
    rows = tiny_rows()[:4]
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        plugins=[AtomicCheckpointIO()],
    )
    with pytest.raises(CheckpointError):
        trainer.fit(
            tiny_task(),
            datamodule=mma.data.AdapterDataModule(rows, rows, collate, batch_size=2),
            ckpt_path=evil,
            weights_only=True,
        )
    with pytest.raises(Exception, match="Unsupported global|weights_only"):
        type(tiny_task()).load_from_checkpoint(evil, backbone=tiny_task().backbone, weights_only=True)
    assert not marker.exists()


# -- adapter folders ----------------------------------------------------------------------------------------------
def test_a_huge_safetensors_header_is_rejected_without_reading_it(saved):
    weights = saved / "a" / "adapter_model.safetensors"
    weights.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(AdapterLoadError, match="header too large.*truncated or corrupt"):
        mma.load_adapter(hf_bert().model, saved / "a")
    weights.write_bytes(struct.pack("<Q", 50_000_000) + b'{"a": 1}')
    with pytest.raises(AdapterLoadError, match="truncated or corrupt"):
        mma.load_adapter(hf_bert().model, saved / "a")


def test_a_huge_or_deeply_nested_config_is_refused(saved):
    config = saved / "a" / "adapter_config.json"
    config.write_text('{"config": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(AdapterLoadError, match="not valid JSON"):
        mma.load_adapter(hf_bert().model, saved / "a")
    config.write_text(json.dumps({"padding": "x" * 2_000_000}))
    with pytest.raises(AdapterLoadError, match="bytes; configs written by mm_adapters are a few KB"):
        mma.load_adapter(hf_bert().model, saved / "a")


@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "a/../../b", "..", "nul\x00byte"])
def test_path_like_names_in_configs_are_refused_and_nothing_is_written(saved, tmp_path, name):
    before = tree(tmp_path)
    for folder, file in (("a", "adapter_config.json"), ("fusion", "fusion_config.json")):
        path = saved / folder / file
        document = json.loads(path.read_text())
        path.write_text(json.dumps({**document, "name": name}))
    with pytest.raises(ValueError, match="Invalid adapter name"):
        mma.load_adapter(hf_bert().model, saved / "a")
    with pytest.raises(ValueError, match="Invalid adapter name"):
        mma.load_fusion(fresh_with_adapters(saved), saved / "fusion")
    assert tree(tmp_path) == before


def test_tensor_names_outside_the_adapter_are_refused(saved):
    from safetensors.torch import load_file, save_file

    weights = saved / "a" / "adapter_model.safetensors"
    tensors = load_file(weights)
    tensors["../../embeddings.word_embeddings.weight"] = torch.zeros(100, 32)
    save_file(tensors, weights)
    model = hf_bert().model
    embeddings = model.embeddings.word_embeddings.weight.clone()
    with pytest.raises(AdapterLoadError, match="unexpected"):
        mma.load_adapter(model, saved / "a")
    assert torch.equal(model.embeddings.word_embeddings.weight, embeddings)


def test_fusion_folders_are_checked_like_adapter_folders(saved, tmp_path):
    marker = tmp_path / "pwned"
    weights = saved / "fusion" / "fusion_model.safetensors"
    torch.save({"x": Exploit(marker)}, weights)
    with pytest.raises(AdapterLoadError, match="truncated or corrupt"):
        mma.load_fusion(fresh_with_adapters(saved), saved / "fusion")
    assert not marker.exists()
    weights.write_bytes(struct.pack("<Q", 2**62))
    with pytest.raises(AdapterLoadError, match="truncated or corrupt"):
        mma.load_fusion(fresh_with_adapters(saved), saved / "fusion")
    config = saved / "fusion" / "fusion_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "adapters": ["../a", "b"]}))
    with pytest.raises(AdapterLoadError, match=r"lacks \['../a'\]"):
        mma.load_fusion(fresh_with_adapters(saved), saved / "fusion")
