"""``--logger``: TensorBoard, Weights & Biases (offline) and MLflow (a local file: store) next to the CSV log."""

import pytest
from test_recipes import run

from mm_adapters.runner.loggers import logger_names


def test_several_trackers_at_once_receive_the_training_metrics(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    output = tmp_path / "out"
    run("vit_cifar", output, "--logger", "tensorboard,wandb,mlflow")
    assert "train_loss" in (output / "logs" / "metrics.csv").read_text().splitlines()[0]  # CSV always kept
    assert (output / "curves.png").is_file()
    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    assert {"train_loss", "val_acc"} <= set(events.Tags()["scalars"])
    assert list((output / "wandb").glob("offline-run-*/run-*.wandb"))
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    [experiment] = [e for e in client.search_experiments() if e.name == "vit_cifar"]
    [mlflow_run] = client.search_runs([experiment.experiment_id])
    assert {"train_loss", "val_acc"} <= set(mlflow_run.data.metrics)


def test_an_unknown_tracker_is_refused_before_training(tmp_path):
    assert logger_names("tensorboard, csv") == ["csv", "tensorboard"]
    with pytest.raises(
        SystemExit, match="unknown \\['comet'\\]; choose from csv, tensorboard, wandb, mlflow"
    ):
        run("vit_cifar", tmp_path / "out", "--logger", "csv,comet")
