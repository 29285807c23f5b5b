"""resolve_resume with a run fingerprint: only the same data and settings resume automatically; another run or a
finished one is refused with a message naming both runs and the way out, and nothing is touched."""

import pytest
import torch

from mm_adapters.reliability import (
    ResumeRefusedError,
    RunFingerprint,
    RunFingerprintCallback,
    RunFinishedError,
    resolve_resume,
    saved_fingerprint,
)

SETTINGS = {"lr": 1e-3, "max_steps": 100, "output_dir": "/somewhere", "num_workers": 4}


def fingerprint(data="abc123", description="/data/reviews", **settings) -> RunFingerprint:
    return RunFingerprint.of(data, description, {**SETTINGS, **settings})


def write_checkpoint(output_dir, run: RunFingerprint | None, finished=False):
    checkpoint = {"state_dict": {"head.weight": torch.zeros(2, 3)}, "global_step": 7}
    if run is not None:
        callback = RunFingerprintCallback(run)
        if finished:
            callback.mark_finished()
        callback.on_save_checkpoint(None, None, checkpoint)
    path = output_dir / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    return path


def test_the_same_run_resumes(tmp_path):
    path = write_checkpoint(tmp_path, fingerprint())
    assert resolve_resume("auto", tmp_path, fingerprint(num_workers=0, output_dir="/elsewhere")) == path


def test_fingerprint_round_trips_through_a_weights_only_checkpoint(tmp_path):
    path = write_checkpoint(tmp_path, fingerprint(), finished=True)
    saved, finished = saved_fingerprint(torch.load(path, weights_only=True))
    assert saved == fingerprint() and finished
    assert "output_dir" not in saved.settings and "num_workers" not in saved.settings


def test_other_data_is_refused_naming_both_data_sets_and_the_fix(tmp_path):
    path = write_checkpoint(tmp_path, fingerprint())
    before = path.read_bytes()
    with pytest.raises(ResumeRefusedError) as error:
        resolve_resume("auto", tmp_path, fingerprint(data="def456", description="/data/other"),
                       start_over="--resume none", other_output="another --output-dir")  # fmt: skip
    message = str(error.value)
    assert "data /data/reviews (fingerprint abc123) there, /data/other (fingerprint def456) here" in message
    assert "--resume none" in message and "another --output-dir" in message
    assert path.read_bytes() == before


def test_other_settings_are_refused_naming_the_setting(tmp_path):
    write_checkpoint(tmp_path, fingerprint())
    with pytest.raises(
        ResumeRefusedError, match=r"lr 0.001 there, 0.01 here.*resume='none'.*another output_dir"
    ):
        resolve_resume("auto", tmp_path, fingerprint(lr=1e-2))


def test_a_checkpoint_without_fingerprint_is_not_taken_for_this_run(tmp_path):
    write_checkpoint(tmp_path, None)
    with pytest.raises(ResumeRefusedError, match="holds no run fingerprint"):
        resolve_resume("auto", tmp_path, fingerprint())
    assert resolve_resume("auto", tmp_path) is not None  # without a fingerprint: the old behaviour


def test_a_finished_run_is_not_retrained_or_reported_again(tmp_path):
    write_checkpoint(tmp_path, fingerprint(), finished=True)
    (tmp_path / "metrics.json").write_text('{"metrics": {"val_acc": 0.9}}')
    with pytest.raises(
        RunFinishedError,
        match=r"is a finished run of the same data and settings; its results are in .*metrics.json and are kept",
    ):
        resolve_resume("auto", tmp_path, fingerprint())
    assert (tmp_path / "metrics.json").read_text() == '{"metrics": {"val_acc": 0.9}}'
    assert resolve_resume("none", tmp_path, fingerprint()) is None  # an explicit start-over is allowed


def test_a_finished_run_killed_before_its_report_completes_it(tmp_path):
    path = write_checkpoint(tmp_path, fingerprint(), finished=True)
    assert resolve_resume("auto", tmp_path, fingerprint()) == path


def test_a_report_without_checkpoint_is_kept(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(RunFinishedError, match="no checkpoint to tell whether it was this one; it is kept"):
        resolve_resume("auto", tmp_path, fingerprint())


def test_an_explicit_checkpoint_path_may_continue_with_other_settings(tmp_path):
    path = write_checkpoint(tmp_path, fingerprint())
    assert resolve_resume(str(path), tmp_path, fingerprint(max_steps=200)) == path
