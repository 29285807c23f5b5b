"""Every recipe's full preset against a stand-in Hugging Face cache, offline: the published ids resolve from the hub
cache layout (models--ORG--NAME/snapshots/<hash> + refs/main) with their real config, processor and tokenizer
files, each recipe trains two steps on a local --data folder, and its export reloads with load_for_inference to
the same validation metrics. The models are random (see tests/hf_standin.py); one child process runs them all,
because the Hugging Face libraries read HF_HOME when imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hf_standin import BERT, OPEN_CLIP_NAME, OPEN_CLIP_TAG, RUNS, TIMM_NAME, VIT, WAV2VEC2
from huggingface_hub import scan_cache_dir

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = {
    "vit_cifar": VIT,
    "vit_cifar_timm": TIMM_NAME,
    "bert_text": BERT,
    "wav2vec_accent": WAV2VEC2,
    "wav2vec_asr": WAV2VEC2,
    "clip_retrieval": f"{OPEN_CLIP_NAME}:{OPEN_CLIP_TAG}",
    "fusion_multitask": BERT,
}


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    root = tmp_path_factory.mktemp("standin")
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env = {**os.environ, **offline, "HF_HOME": str(root / "hf"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "hf_standin.py"), str(root)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((root / "results.json").read_text())
    return root, {result["run"]: result for result in results}


def test_the_stand_in_cache_has_the_hub_layout(standin):
    root, _ = standin
    repos = {repo.repo_id: repo for repo in scan_cache_dir(root / "hf" / "hub").repos}
    assert set(repos) == {VIT, BERT, WAV2VEC2, f"timm/{TIMM_NAME}", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"}
    files = {
        repo_id: {file.file_name for rev in repo.revisions for file in rev.files}
        for repo_id, repo in repos.items()
    }
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files[VIT]
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    } <= files[BERT]
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files[WAV2VEC2]
    assert {"config.json", "model.safetensors"} <= files[f"timm/{TIMM_NAME}"]
    clip = files["laion/CLIP-ViT-B-32-laion2B-s34B-b79K"]
    assert {"open_clip_config.json", "open_clip_model.safetensors"} <= clip
    assert all(rev.refs == frozenset({"main"}) for repo in repos.values() for rev in repo.revisions)


@pytest.mark.parametrize("run", list(RUNS))
def test_full_preset_runs_offline_and_its_export_reloads_exactly(standin, run):
    root, results = standin
    report, reloaded = results[run]["report"], results[run]["reloaded"]
    assert report["preset"] == "full" and report["backbone"] == BACKBONES[run]
    stages = [report[key] for key in ("stage1", "fusion") if key in report]
    steps = (
        [report["steps"]]
        if not stages
        else [s["steps"] for s in (*report["stage1"].values(), report["fusion"])]
    )
    assert steps and all(step == 2 for step in steps)
    assert report["metrics"] and set(reloaded) == set(report["metrics"])
    for key, value in report["metrics"].items():
        assert reloaded[key] == pytest.approx(value, abs=1e-5), key


def test_preset_auto_runs_full_when_the_backbone_is_cached(standin):
    _, results = standin
    assert results["preset_auto"]["preset"] == "full"
