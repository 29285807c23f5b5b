"""Hub ids wherever a folder is accepted: load_adapter, load_fusion and load_for_inference read ``org/name`` and
``org/name@revision`` from the Hugging Face cache (a stand-in cache in the real layout; offline), with the outputs of
the local folder; an id that is not there fails at once, naming the id and the cache."""

import shutil
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from adapterhub_models import from_folder
from hf_standin import SNAPSHOT, snapshot
from safetensors.torch import load_file
from torch import nn

import mm_adapters as mma
from mm_adapters.backbones import wrap_backbone
from mm_adapters.errors import AdapterLoadError
from mm_adapters.io import parse_hub_id, resolve_folder
from mm_adapters.lightning import load_for_inference

from tiny_backbones import hf_bert

ADAPTERHUB = Path(__file__).parent / "fixtures" / "adapterhub"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty offline hub cache; ``hub(repo_id, folder)`` publishes ``folder``'s files under ``repo_id``."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def publish(repo_id: str, folder: Path) -> Path:
        target = snapshot(tmp_path / "hf", repo_id)
        for path in folder.iterdir():
            shutil.copy(path, target / path.name)
        return target

    publish.cache = tmp_path / "hf" / "hub"
    return publish


def _run(tiny):
    with torch.no_grad():
        return tiny.run(tiny.model, tiny.make_batch(0))


def test_hub_ids_are_told_apart_from_paths():
    assert parse_hub_id("AdapterHub/roberta-base-pf-sst2") == ("AdapterHub/roberta-base-pf-sst2", None)
    assert parse_hub_id("org/name@v1.0") == ("org/name", "v1.0")
    assert parse_hub_id("runs/a/adapter") is None and parse_hub_id("../x/y") is None
    assert parse_hub_id("org/adapter_config.json") is None


def test_adapterhub_repo_loads_like_its_local_folder(hub):
    local = ADAPTERHUB / "bert_pfeiffer" / "adapter"
    hub("AdapterHub/bert-tiny-pf-test", local)
    by_folder = from_folder("bert", ADAPTERHUB / "bert_pfeiffer" / "backbone")
    mma.load_adapter(by_folder.model, local)
    by_id = from_folder("bert", ADAPTERHUB / "bert_pfeiffer" / "backbone")
    assert mma.load_adapter(by_id.model, "AdapterHub/bert-tiny-pf-test") == "task"
    expected = load_file(str(ADAPTERHUB / "bert_pfeiffer" / "expected.safetensors"))["output"]
    torch.testing.assert_close(_run(by_id), _run(by_folder))
    torch.testing.assert_close(_run(by_id), expected, rtol=1e-5, atol=1e-5)


def test_adapterhub_fusion_repo_loads_like_its_local_folder(hub):
    case = ADAPTERHUB / "roberta_fusion"
    for name in ("a", "b", "fusion"):
        hub(f"AdapterHub/roberta-tiny-{name}", case / name)
    tiny = from_folder("roberta", case / "backbone")
    for name in ("a", "b"):
        mma.load_adapter(tiny.model, f"AdapterHub/roberta-tiny-{name}")
    assert mma.load_fusion(tiny.model, "AdapterHub/roberta-tiny-fusion") == "a_b"
    expected = load_file(str(case / "expected.safetensors"))["output"]
    torch.testing.assert_close(_run(tiny), expected, rtol=1e-5, atol=1e-5)


def test_our_export_loads_by_id_and_pinned_revision_like_the_local_folder(hub, tmp_path):
    tiny = hf_bert(0)
    mma.add_adapter(tiny.model, "task", mma.AdapterConfig.houlsby())
    with torch.no_grad():
        for tensor in mma.serialization.site_tensors(tiny.model, "task").values():
            tensor.normal_(std=0.3)
    head = nn.Linear(32, 2)
    folder = mma.save_adapter(tiny.model, "task", tmp_path / "export", head=head)
    hub("me/bert-task", folder)
    for given in ("me/bert-task", f"me/bert-task@{SNAPSHOT}"):
        backbone = wrap_backbone(hf_bert(0).model)
        loaded = load_for_inference(backbone, given)
        torch.testing.assert_close(loaded.weight, head.weight)
        with torch.no_grad():
            torch.testing.assert_close(tiny.run(backbone.model, tiny.make_batch(0)), _run(tiny))


def test_a_missing_id_fails_fast_naming_the_id_and_the_cache(hub):
    started = time.perf_counter()
    with pytest.raises(AdapterLoadError) as error:
        mma.load_adapter(hf_bert(0).model, "AdapterHub/not-downloaded")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert (
        "'AdapterHub/not-downloaded'" in message and str(hub.cache) in message and "HF_HUB_OFFLINE" in message
    )
    with pytest.raises(AdapterLoadError, match="at revision 'v2'"):
        resolve_folder("me/bert-task@v2")


def test_a_local_folder_wins_over_a_hub_id_and_a_path_object_is_never_an_id(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert resolve_folder("org/name") == Path("org/name")
    assert resolve_folder(Path("other/name")) == Path("other/name")
