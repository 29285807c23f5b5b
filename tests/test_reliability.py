"""Nothing is lost: crash-safe checkpoints, resumable data order, exact mid-epoch resume, and a stop at NaN/Inf."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

import mm_adapters as mma
from mm_adapters.backbones import wrap_backbone
from mm_adapters.data import AdapterDataModule
from mm_adapters.data.resumable import ResumableDataLoader, ResumableSampler
from mm_adapters.lightning import ClassificationModule
from mm_adapters.reliability import (
    AtomicCheckpointIO,
    CheckpointError,
    FiniteLossGuard,
    NonFiniteLossError,
    resolve_resume,
)

from tiny_backbones import hf_vit

NUM_ROWS, NUM_CLASSES = 24, 3


def tiny_rows(seed: int = 0) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    return [
        {"pixel_values": torch.randn(3, 32, 32, generator=generator), "label": i % NUM_CLASSES}
        for i in range(NUM_ROWS)
    ]


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([row["pixel_values"] for row in rows]),
        "labels": torch.tensor([row["label"] for row in rows]),
        "index": torch.tensor([row["index"] for row in rows]),
    }


def tiny_task(lr: float = 1e-2, seed: int = 0) -> ClassificationModule:
    """A tiny ViT with a Houlsby adapter and a 3-class head; the same weights for the same seed."""
    torch.manual_seed(seed)
    backbone = wrap_backbone(hf_vit(seed).model)
    mma.add_adapter(backbone.model, "task", mma.AdapterConfig.houlsby(reduction_factor=4))
    return ClassificationModule(backbone, NUM_CLASSES, lr=lr, weight_decay=0.0)


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Dies when step ``step`` is done and checkpointed, as a killed process would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise Crash


class BackboneStaysInEval(Callback):
    def on_train_batch_start(self, trainer, pl_module, *args) -> None:
        assert not pl_module.backbone.training, f"backbone in train mode at step {trainer.global_step}"


def tiny_trainer(folder: Path, max_steps: int, extra: list[Callback] = (), **kwargs) -> L.Trainer:
    kwargs = {"max_epochs": -1, "limit_val_batches": 0, **kwargs}
    return L.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
        callbacks=[
            FiniteLossGuard(),
            *extra,
            ModelCheckpoint(dirpath=folder, save_last=True, save_top_k=0, every_n_train_steps=1),
        ],
        **kwargs,
    )


def trainable(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters() if v.requires_grad}


# -- data order ---------------------------------------------------------------------------------------------------
def test_one_process_sees_the_global_batches_of_two():
    rows = list(range(10))
    single = ResumableSampler(rows, seed=3)
    ranks = [ResumableSampler(rows, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    for epoch in (0, 1):
        for sampler in (single, *ranks):
            sampler.set_epoch(epoch)
        order, shares = list(single), [list(s) for s in ranks]
        for step in range(0, 5, 2):  # global batch 4 = 2 per rank
            assert set(order[2 * step : 2 * step + 4]) == set(
                shares[0][step : step + 2] + shares[1][step : step + 2]
            )
    assert list(single) != sorted(single), "epochs must be shuffled"


def test_loader_state_skips_the_batches_already_served():
    rows = [{"x": i, "index": i} for i in range(10)]
    loader = ResumableDataLoader(rows, batch_size=3, sampler=ResumableSampler(rows, seed=0), collate_fn=list)
    loader.sampler.set_epoch(1)
    iterator = iter(loader)
    first_two = [next(iterator), next(iterator)]
    state = loader.state_dict()
    assert state == {"epoch": 1, "batches": 2}
    rest = list(iterator)

    fresh = ResumableDataLoader(rows, batch_size=3, sampler=ResumableSampler(rows, seed=0), collate_fn=list)
    fresh.load_state_dict(state)
    fresh.sampler.set_epoch(1)
    assert list(fresh) == rest and fresh.state_dict() == {"epoch": 1, "batches": 4}
    assert len(first_two) + len(rest) == len(loader)
    fresh.sampler.set_epoch(2)
    assert len(list(fresh)) == len(loader), "the skip applies to the resumed epoch only"


# -- resume -------------------------------------------------------------------------------------------------------
def test_mid_epoch_resume_matches_an_uninterrupted_run(tmp_path):
    """2 epochs of 4 batches with validation; crash after step 2 (mid-epoch) and resume: bit-identical weights,
    and the frozen backbone runs in eval mode after the restart too (no dropout switched on)."""
    rows = tiny_rows()[:8]

    def data():
        return AdapterDataModule(rows, rows[:2], collate, batch_size=2, seed=0)

    def trainer(folder: Path, *extra: Callback) -> L.Trainer:
        return tiny_trainer(folder, -1, [BackboneStaysInEval(), *extra], max_epochs=2, limit_val_batches=1)

    straight = tiny_task()
    trainer(tmp_path / "straight").fit(straight, datamodule=data())
    with pytest.raises(Crash):
        trainer(tmp_path / "resumed", CrashAt(2)).fit(tiny_task(), datamodule=data())
    resumed, resumed_trainer = tiny_task(), trainer(tmp_path / "resumed")
    resumed_trainer.fit(
        resumed, datamodule=data(), ckpt_path=tmp_path / "resumed" / "last.ckpt", weights_only=True
    )
    assert resumed_trainer.global_step == 8
    for name, value in trainable(straight).items():
        torch.testing.assert_close(trainable(resumed)[name], value, rtol=0, atol=0, msg=name)


def test_resolve_resume(tmp_path):
    assert resolve_resume("auto", tmp_path) is None and resolve_resume(None, tmp_path) is None
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    torch.save({"global_step": 3}, last)
    assert resolve_resume("auto", tmp_path) == last
    assert resolve_resume("none", tmp_path) is None
    last.write_bytes(last.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="truncated or corrupt.*resume='none'"):
        resolve_resume("auto", tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_resume(tmp_path / "nowhere.ckpt", tmp_path)


# -- atomic writes ------------------------------------------------------------------------------------------------
def test_a_write_killed_half_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    (tmp_path / ".last.ckpt.leftover.tmp").write_bytes(b"from a killed writer")

    def dies_half_way(obj, target):
        Path(target).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["global_step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"], "no temporary file may be left behind"


# -- NaN / Inf ----------------------------------------------------------------------------------------------------
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    rows, calls = tiny_rows(), []

    def poisoned(batch_rows):
        calls.append(1)
        batch = collate(batch_rows)
        if len(calls) == 4:  # the 4th training batch (step 3) carries a NaN pixel
            batch["pixel_values"][0, 0, 0, 0] = float("nan")
        return batch

    module = tiny_task()
    trainer = tiny_trainer(tmp_path, 20)
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*loss is nan.*last good checkpoint.*last\.ckpt"):
        trainer.fit(module, datamodule=AdapterDataModule(rows, rows, poisoned, batch_size=3))
    checkpoint = AtomicCheckpointIO().load_checkpoint(tmp_path / "last.ckpt")
    assert checkpoint["global_step"] == 3
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())
    assert all(torch.isfinite(p).all() for p in trainable(module).values()), (
        "the NaN step must not be applied"
    )


def test_non_finite_weights_are_never_checkpointed(tmp_path):
    module = tiny_task(lr=float("inf"))
    rows = tiny_rows()
    with pytest.raises(
        NonFiniteLossError, match=r"step 1 .*trainable parameters .* became NaN.*No checkpoint"
    ):
        tiny_trainer(tmp_path, 5).fit(module, datamodule=AdapterDataModule(rows, rows, collate, batch_size=3))
    assert not (tmp_path / "last.ckpt").exists()
