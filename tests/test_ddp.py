"""DDP on CPU: 2 processes (gloo) with batch 4 each train the same adapter as 1 process with batch 8.

Run as a script, this file is the training job (Lightning's DDP launcher starts rank 1 by running it again):
``python tests/test_ddp.py --devices 2 --batch-size 4 --out trained.safetensors``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

STEPS, GLOBAL_BATCH = 4, 8
TOLERANCE = 1e-5  # float32: the all-reduce sums gradients in another order than one process, and Adam's
# m / sqrt(v) magnifies that for near-zero gradients; measured max difference 1.5e-6 (updates are ~1e-2)


def train(devices: int, batch_size: int, out: Path | None = None, checkpoints: Path | None = None) -> dict:
    """Train the tiny ViT adapter task for STEPS steps; return (and on rank 0 save) adapter + head tensors."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from safetensors.torch import save_file
    from test_reliability import collate, tiny_rows, tiny_task

    import mm_adapters as mma
    from mm_adapters.data import AdapterDataModule
    from mm_adapters.reliability import AtomicCheckpointIO, FiniteLossGuard

    L.seed_everything(0, verbose=False)
    module = tiny_task()
    rows = tiny_rows()
    callbacks = [FiniteLossGuard()]
    if checkpoints is not None:
        callbacks.append(
            ModelCheckpoint(dirpath=checkpoints, save_last=True, save_top_k=0, every_n_train_steps=1)
        )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_steps=STEPS,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
        enable_checkpointing=checkpoints is not None,
    )
    trainer.fit(module, datamodule=AdapterDataModule(rows, rows, collate, batch_size=batch_size, seed=0))
    tensors = {f"adapter.{k}": v for k, v in mma.adapter_state_dict(module.backbone.model, "task").items()}
    tensors.update({f"head.{k}": v.detach().contiguous() for k, v in module.head.state_dict().items()})
    if out is not None and trainer.is_global_zero:
        save_file(tensors, str(out))
    return tensors


def test_two_processes_train_the_same_adapter_as_one(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "ddp.safetensors"
    command = [sys.executable, __file__, "--devices", "2", "--batch-size", str(GLOBAL_BATCH // 2)]
    command += ["--out", str(out), "--checkpoints", str(tmp_path / "checkpoints")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()

    single = train(devices=1, batch_size=GLOBAL_BATCH)
    ddp = load_file(out)
    assert set(ddp) == set(single)
    differences = {key: (ddp[key] - single[key]).abs().max().item() for key in single}
    print(f"max |DDP - single| = {max(differences.values()):.2e}")
    assert max(differences.values()) <= TOLERANCE, sorted(differences.items(), key=lambda kv: -kv[1])[:3]
    assert any((value != 0).any() for key, value in single.items() if key.endswith("up.weight")), "it trained"


def test_fsdp_strategy_wraps_each_block_and_keeps_per_tensor_requires_grad():
    """FSDP needs a GPU in Lightning, so only its set-up is checked here (docs/scale_out.md has the command)."""
    import pytest
    from test_reliability import tiny_task
    from transformers.models.vit.modeling_vit import ViTLayer

    from mm_adapters.reliability import make_strategy

    model = tiny_task().backbone.model
    strategy = make_strategy("fsdp", model)
    assert strategy.kwargs["use_orig_params"] is True
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {ViTLayer}
    with pytest.raises(ValueError, match="use_orig_params=True"):
        make_strategy("fsdp", model, use_orig_params=False)
    with pytest.raises(ValueError, match="Unknown strategy 'horovod'"):
        make_strategy("horovod")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=GLOBAL_BATCH // 2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--checkpoints", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train(args.devices, args.batch_size, args.out, args.checkpoints)
