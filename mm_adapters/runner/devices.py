"""``--strategy`` and ``--devices`` checked against this machine before anything is loaded, so that a setting that
cannot run says what to use instead (rather than Lightning's traceback after the backbone and data have loaded)."""

from __future__ import annotations

import torch


def check_devices(strategy: str, devices: int | str, accelerator_count: int | None = None) -> None:
    """Raise ValueError naming what to use when ``strategy``/``devices`` cannot run here. ``accelerator_count``:
    the GPUs to assume (default: ``torch.cuda.device_count()``)."""
    gpus = torch.cuda.device_count() if accelerator_count is None else accelerator_count
    if isinstance(devices, str) and devices != "auto" and not devices.lstrip("-").isdigit():
        raise ValueError(f'--devices {devices!r}: give a number of devices or "auto".')
    count = None if devices == "auto" else int(devices)
    if count is not None and (count == 0 or count < -1):
        raise ValueError(f"--devices {count}: give at least 1 (or -1 / auto for every device here).")
    if strategy == "fsdp" and gpus == 0:
        raise ValueError(
            "--strategy fsdp shards the model across GPUs and this machine has none. On CPU use --strategy ddp "
            "(one process per --devices, each with the whole model), or drop --strategy for one process."
        )
    if gpus and count is not None and count > gpus:
        raise ValueError(
            f"--devices {count}: this machine has {gpus} GPU{'s' if gpus > 1 else ''}. Pass --devices {gpus} (or "
            "auto), or start the run on every node with --num-nodes for more."
        )
