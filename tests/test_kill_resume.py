"""A recipe run killed with SIGKILL at random steps and restarted with the same command ends with the same metrics.

The run checkpoints every step (trainable state only, written atomically); a restart finds
``<output-dir>/checkpoints/last.ckpt`` and continues from it, mid-epoch included. Settings are deterministic (CPU,
one thread, fixed seed), so the resumed run must reproduce the uninterrupted run's metrics exactly; the assertion
allows 1e-6.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from mm_adapters.reliability import CheckpointError, check_checkpoint

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "vit_cifar.py"
EPOCHS, STEPS_PER_EPOCH = 3, 4  # 16 training images, batch 4
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """A two-class image folder with train/ (8 per class) and test/ (2 per class) splits."""
    root, colours = tmp_path_factory.mktemp("images"), random.Random(0)
    for split, count in (("train", 8), ("test", 2)):
        for label in ("cat", "dog"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                colour = tuple(colours.randrange(256) for _ in range(3))
                Image.new("RGB", (8, 8), colour).save(root / split / label / f"{i}.png")
    return root


def command(data: Path, output: Path) -> list[str]:
    return [
        sys.executable, str(RECIPE), "--preset", "demo", "--data", str(data), "--output-dir", str(output),
        "--max-epochs", str(EPOCHS), "--batch-size", "4", "--checkpoint-every-n-steps", "1", "--seed", "0",
    ]  # fmt: skip


def start(data: Path, output: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with open(output.parent / f"{output.name}.log", "ab") as log:  # the child keeps its own handle
        return subprocess.Popen(command(data, output), env=env, stdout=log, stderr=subprocess.STDOUT)


def checkpoint_step(output: Path) -> int:
    last = output / "checkpoints" / "last.ckpt"
    if not last.is_file():
        return -1
    try:
        return int(check_checkpoint(last)["global_step"])
    except (CheckpointError, FileNotFoundError):  # replaced while we opened it
        return -1


def kill_after_step(process: subprocess.Popen, output: Path, step: int, timeout: float = 180.0) -> int:
    """SIGKILL ``process`` as soon as its last checkpoint is at ``step`` or later; return the step it reached."""
    deadline = time.monotonic() + timeout
    while (reached := checkpoint_step(output)) < step:
        assert process.poll() is None, f"the run ended before step {step}; see {output}.log"
        assert time.monotonic() < deadline, f"no checkpoint of step {step} after {timeout} s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    return reached


def metrics(output: Path) -> dict[str, float]:
    return json.loads((output / "metrics.json").read_text())["metrics"]


def test_killed_twice_and_restarted_ends_like_an_uninterrupted_run(image_folder, tmp_path):
    total = EPOCHS * STEPS_PER_EPOCH
    first_kill = random.randint(1, STEPS_PER_EPOCH)
    second_kill = random.randint(first_kill + 2, total - 3)
    reference_run = start(image_folder, tmp_path / "reference")
    killed = tmp_path / "killed"
    reached = [kill_after_step(start(image_folder, killed), killed, first_kill)]
    reached.append(kill_after_step(start(image_folder, killed), killed, second_kill))
    final = start(image_folder, killed)
    assert final.wait(timeout=300) == 0, (killed.parent / "killed.log").read_text()[-3000:]
    assert reference_run.wait(timeout=300) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    log = (tmp_path / "killed.log").read_text()
    print(f"kill points (steps checkpointed before SIGKILL): {reached}; total {total}")
    assert log.count("Restoring states from the checkpoint path") == 2, "both restarts must resume"
    report = json.loads((killed / "metrics.json").read_text())
    assert report["steps"] == total and Path(report["resumed_from"]) == killed / "checkpoints" / "last.ckpt"
    expected, got = metrics(tmp_path / "reference"), metrics(killed)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=TOLERANCE), (name, reached)
