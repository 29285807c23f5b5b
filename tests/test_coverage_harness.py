"""The coverage sweep's harness: worker processes with a time limit per model (results in input order), the
coverage figures and their targets (``python -m mm_adapters.coverage --check``), the listed Hugging Face types, and
the task heads the sweep builds."""

import dataclasses
import json
import multiprocessing
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from mm_adapters.coverage import Candidate, Result, check_model, named_candidate, pool
from mm_adapters.coverage import __main__ as coverage_main
from mm_adapters.coverage import sweep as sweep_module
from mm_adapters.coverage.candidates import HF_LISTED, hf_candidates
from mm_adapters.coverage.check import HALF_ADAPTED, REFUSED
from mm_adapters.coverage.sweep import (
    BUILD_FAILED,
    ISSUE_TARGETS,
    TARGETS,
    below_targets,
    figures,
    group_outcomes,
    library_counts,
    listed_type_coverage,
    status,
    target_lines,
)

ROOT = Path(__file__).resolve().parents[1]


def _sleeping_candidate(library: str, name: str) -> Candidate:
    """A candidate whose build sleeps ``name`` seconds, then fails (so no model is checked)."""

    def build():
        time.sleep(float(name))
        raise RuntimeError(f"fake {name}")

    return Candidate(library, name, build, lambda model: model)


@pytest.fixture
def alarm_handler_restored():
    previous = signal.getsignal(signal.SIGALRM)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


# -- the time limit and the worker pool ------------------------------------------------------------------------------
def test_a_model_over_its_time_limit_is_reported_as_timed_out(monkeypatch, alarm_handler_restored):
    monkeypatch.setattr(pool, "named_candidate", _sleeping_candidate)
    index, row = pool._check_one((7, "timm", "30", 1, False))
    result = Result(**row)
    assert index == 7
    assert result.error == "timed out after 1 s" and status(result) == "timed out"


def test_a_model_within_its_time_limit_leaves_no_alarm_behind(monkeypatch, alarm_handler_restored):
    monkeypatch.setattr(pool, "named_candidate", _sleeping_candidate)
    index, row = pool._check_one((3, "timm", "0", 60, False))
    assert index == 3 and row["error"] == f"{BUILD_FAILED}: RuntimeError: fake 0"
    assert signal.alarm(0) == 0  # a pending alarm would stop the worker's next model


def test_sweep_in_processes_returns_results_in_input_order(monkeypatch):
    """Workers finish out of order (the first model is the slowest); results come back in the order given.
    Forked workers see the monkeypatched candidates (the sweep itself spawns fresh ones)."""
    monkeypatch.setattr(pool, "named_candidate", _sleeping_candidate)
    monkeypatch.setattr(
        pool,
        "multiprocessing",
        types.SimpleNamespace(get_context=lambda _: multiprocessing.get_context("fork")),
    )
    names = ["0.8", "0.2", "0.0", "0.1"]
    finished = []
    results = pool.sweep_in_processes(
        [_sleeping_candidate("timm", name) for name in names], jobs=2, seconds=60, progress=finished.append
    )
    assert [r.name for r in results] == names
    assert [r.name for r in finished] != names  # they did finish in another order
    assert all(r.error == f"{BUILD_FAILED}: RuntimeError: fake {r.name}" for r in results)
    assert all(isinstance(r.notes, tuple) and r.library == "timm" for r in results)


def test_sweep_in_processes_checks_real_models_in_spawned_workers():
    items = [named_candidate("transformers", name) for name in ("distilbert", "no-such-model-type")]
    results = pool.sweep_in_processes(items, jobs=2, seconds=300)
    assert [r.name for r in results] == ["distilbert", "no-such-model-type"]
    assert results[0].ok and results[0].family and results[0].towers, results[0].error
    assert status(results[1]) == "not built"


# -- coverage figures and targets ------------------------------------------------------------------------------------
def _row(library: str, name: str, ok: bool = True, model_class: str = "", error: str = "") -> Result:
    return Result(library, name, model_class=model_class, error=error or ("" if ok else "AssertionError: no"))


def test_a_listed_type_counts_only_when_its_base_model_and_head_both_pass():
    results = [
        _row("transformers", "distilbert"),
        _row("transformers", "distilbert:SequenceClassification"),
        _row("transformers", "albert"),
        _row("transformers", "albert:SequenceClassification", ok=False),
        _row(
            "transformers", "swin:ImageClassification"
        ),  # its base model did not build: not counted against it
        _row("transformers", "swin", error=f"{BUILD_FAILED}: OSError: offline"),
        _row("transformers", "bert:SequenceClassification", ok=False),  # not a listed type
        _row("timm", "deit", ok=False),  # another library's model of a listed name
    ]
    assert listed_type_coverage(results, ("distilbert", "albert", "swin", "deit")) == (2, 3)
    assert figures(results, HF_LISTED)["transformers listed types"] == (2, 3)


def test_groups_count_apart_what_is_refused_or_not_built():
    results = [
        _row("timm", "vit_a", model_class="VisionTransformer"),
        _row("timm", "vit_b", ok=False),
        _row("timm", "resnet18", error=f"{REFUSED}: ValueError: no attention blocks"),
        _row("timm", "odd", error=f"{BUILD_FAILED}: RuntimeError: offline"),
        _row("timm", "swin_a"),
        _row("timm", "swin_b", error=f"{HALF_ADAPTED}: houlsby: 1 of 2 blocks"),
    ]
    for result, group in zip(results, ["vit", "vit", "resnet", "odd", "swin", "swin"], strict=True):
        result.group = group
    assert group_outcomes(results, "timm") == {
        "vit": "fail",
        "resnet": "refused",
        "odd": "not built",
        "swin": "fail",
    }
    assert library_counts(results, "timm") == {
        "swept": 6, "pass": 2, "refused": 1, "fail": 2, "half-adapted": 1, "not built": 1,
    }  # fmt: skip
    assert figures(results) == {"timm modules": (0, 2), "half-adapted models": (1, 6)}
    assert status(results[2]) == "refused" and status(results[5]) == "half-adapted"


def test_below_targets_names_each_figure_under_its_guard(monkeypatch):
    monkeypatch.setattr(
        sweep_module, "TARGETS", {"open_clip configs": 95, "timm modules": 90, "half-adapted models": 0}
    )
    passing = [_row("open_clip", f"m{i}") for i in range(19)] + [_row("open_clip", "bad", ok=False)]  # 95%
    timm = [_row("timm", f"t{i}") for i in range(9)] + [_row("timm", "odd", ok=False)]  # 90%
    for result in timm:
        result.group = result.name
    assert below_targets(passing + timm) == []  # exactly at the guards passes
    timm.append(_row("timm", "odd2", error=f"{HALF_ADAPTED}: x"))  # 9 of 11 modules, one half-adapted model
    passing.append(_row("open_clip", "bad2", ok=False))  # 19 of 21
    assert below_targets(passing + timm) == [
        "open_clip configs: 90.5% < 95%",
        "timm modules: 81.8% < 90%",
        "half-adapted models: 1 > 0",
    ]


def test_the_guards_stand_beside_the_issue_targets():
    assert set(ISSUE_TARGETS) <= set(TARGETS)
    results = [_row("open_clip", "ViT-B-32"), _row("open_clip", "RN50", ok=False)]
    lines = target_lines(results)
    guard = TARGETS["open_clip configs"]
    assert lines[2] == f"| open_clip configs | 50.0% (1/2) | >= {guard}% | >= 100% | not met |"
    assert lines[3] == f"| half-adapted models | 0 | <= {TARGETS['half-adapted models']} | <= 0 | met |"


def _write(path: Path, results: list[Result]) -> Path:
    path.write_text(json.dumps([dataclasses.asdict(r) for r in results]))
    return path


GUARDS = {"open_clip configs": 100, "timm modules": 95, "transformers types": 95, "half-adapted models": 0}


def test_check_exits_1_naming_the_figures_below_their_guard(tmp_path):
    """In a fresh process, with the guards of this branch (a figure at 0% is below any of them)."""
    rows = [_row("open_clip", "ViT-B-32"), _row("open_clip", "RN50", error=f"{HALF_ADAPTED}: x")]
    rows += [_row("timm", "vit_small_patch16_224", error=f"{REFUSED}: ValueError: x")]
    rows += [_row("transformers", "distilbert", ok=False)]
    command = [
        sys.executable,
        "-m",
        "mm_adapters.coverage",
        "--merge",
        str(_write(tmp_path / "r.json", rows)),
    ]
    done = subprocess.run([*command, "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Coverage below target: " in done.stderr and "transformers types: 0.0% < " in done.stderr
    assert "timm" not in done.stderr  # every timm model refused: no timm figure
    assert "open_clip configs: 1 of 2 pass (50%), of 2 swept" in done.stdout
    assert (
        "timm modules: 0 of 0 pass, of 1 swept; 1 refused (no attention blocks), 0 not built" in done.stdout
    )


def test_merge_writes_the_tables_and_lists_the_types_without_a_base_model(tmp_path, monkeypatch, capsys):
    rows = [_row("open_clip", "ViT-B-32"), _row("timm", "eva02", model_class="Eva")]
    rows += [
        _row("transformers", "distilbert"),
        _row("transformers", "sew-d:CTC", ok=False, error="ValueError: x"),
    ]
    rows += [_row("transformers", "swin", error=f"{BUILD_FAILED}: OSError: offline")]
    first = _write(tmp_path / "a.json", rows[:2])
    second = _write(tmp_path / "b.json", rows[2:])
    table = tmp_path / "supported.md"
    checked = ["--check", "--markdown", str(table)]
    monkeypatch.setattr(sweep_module, "TARGETS", GUARDS)
    monkeypatch.setattr(sys, "argv", ["coverage", "--merge", str(first), *checked])  # at the guards
    coverage_main.main()
    monkeypatch.setattr(sys, "argv", ["coverage", "--merge", str(first), str(second), *checked])
    with pytest.raises(SystemExit, match="transformers types: 50.0% < 95%"):
        coverage_main.main()
    out = capsys.readouterr().out
    assert "transformers models: 3 swept: 1 pass, 0 refused, 1 fail (0 half-adapted), 1 not built" in out
    text = table.read_text()
    assert "- transformers `sew-d:CTC`: ValueError: x" in text  # the failure, with its reason
    assert "| transformers | swin | swin |  |  | 0 |  | not built | build failed: OSError: offline |" in text
    assert "| transformers | sew-d | fail | sew-d:CTC (fails) |" in text
    assert "## Config types with no base model class" in text and "`encoder-decoder`" in text


def test_merge_takes_a_rerun_model_from_the_later_file(tmp_path, capsys, monkeypatch):
    first = _write(tmp_path / "a.json", [_row("timm", "vit", ok=False), _row("timm", "deit")])
    rerun = tmp_path / "b.jsonl"
    rerun.write_text(json.dumps(dataclasses.asdict(_row("timm", "vit"))) + "\n")
    monkeypatch.setattr(sys, "argv", ["coverage", "--merge", str(first), str(rerun)])
    coverage_main.main()
    assert "timm models: 2 swept: 2 pass, 0 refused, 0 fail" in capsys.readouterr().out


# -- task heads that did not build before ----------------------------------------------------------------------------
def test_the_sweep_lists_the_deit_and_conformer_heads():
    names = [c.name for c in hf_candidates(("deit", "wav2vec2-conformer"))]
    assert names == ["deit", "deit:ImageClassification", "wav2vec2-conformer", "wav2vec2-conformer:CTC"]


@pytest.mark.parametrize(
    "name, model_class, family, tower",
    [
        (
            "deit:ImageClassification",
            "DeiTForImageClassification",
            "hf_vit",
            "vision",
        ),  # not the teacher head
        ("wav2vec2-conformer:CTC", "Wav2Vec2ConformerForCTC", "hf_wav2vec2_conformer", "audio"),
    ],
)
def test_heads_build_and_pass_the_check(name, model_class, family, tower):
    candidate = named_candidate("transformers", name)
    model = candidate.build()
    assert type(model).__name__ == model_class
    result = check_model(model, candidate.run, Result("transformers", name))
    assert result.ok, result.error
    assert (result.family, list(result.towers)) == (family, [tower])
    if name.endswith("CTC"):
        assert model.lm_head.out_features == 32  # the config has no CTC vocabulary of its own
