"""``--logger``: Lightning's experiment trackers for a run, several at once. CSV is always kept (``logs/metrics.csv``
feeds curves.png); TensorBoard writes to ``<output>/tensorboard``; Weights & Biases to ``<output>/wandb`` (offline
with ``WANDB_MODE=offline``); MLflow to ``MLFLOW_TRACKING_URI`` when set, else ``file:<output>/mlruns`` (a file store, which MLflow 3 allows with
``MLFLOW_ALLOW_FILE_STORE=true``: set for such a URI unless the environment says otherwise)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def logger_names(text: str) -> list[str]:
    """``"csv,tensorboard"`` -> the names, checked (known, and their package importable); ``csv`` always first."""
    names = [name.strip().lower() for name in str(text).split(",") if name.strip()]
    unknown = [name for name in names if name not in LOGGERS]
    if unknown:
        raise ValueError(
            f"--logger {text!r}: unknown {unknown}; choose from {', '.join(LOGGERS)} (comma-separated)."
        )
    missing = [
        name for name in names if name in PACKAGES and importlib.util.find_spec(PACKAGES[name]) is None
    ]
    if missing:
        packages = " ".join("mlflow-skinny" if n == "mlflow" else PACKAGES[n] for n in missing)
        raise ValueError(f"--logger {', '.join(missing)} needs `pip install {packages}`.")
    return ["csv", *dict.fromkeys(name for name in names if name != "csv")]


def make_loggers(text: str, output: Path, recipe: str, run_name: str) -> list[Any]:
    """The Lightning loggers ``text`` names, writing under ``output`` (CSV first: ``trainer.log_dir`` is its)."""
    loggers: list[Any] = []
    for name in logger_names(text):
        if name == "csv":
            loggers.append(CSVLogger(output, name="", version="logs"))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            loggers.append(TensorBoardLogger(output, name="", version="tensorboard"))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            (output / "wandb").mkdir(parents=True, exist_ok=True)
            loggers.append(WandbLogger(name=run_name, project=recipe, save_dir=str(output)))
        else:
            from lightning.pytorch.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (output / "mlruns").resolve().as_uri()
            if uri.startswith(
                "file:"
            ):  # MLflow 3 refuses its file store unless asked (a database is its default)
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            loggers.append(MLFlowLogger(experiment_name=recipe, run_name=run_name, tracking_uri=uri))
    return loggers
