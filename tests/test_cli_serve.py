"""``mm-adapters serve`` on a free loopback port (a thread, stopped after the module): answers equal offline
prediction, concurrent requests for different tasks are batched together and each gets its own answer, tasks are
added and removed while serving, and every bad request gets a 4xx naming its field while the server stays up."""

import base64
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from types import SimpleNamespace

import numpy as np
import pytest
import requests
import soundfile
import uvicorn
from PIL import Image

from mm_adapters import AdapterConfig, add_adapter
from mm_adapters.backbones import load_backbone
from mm_adapters.cli.serve import export_folders
from mm_adapters.inference import InferenceSession, InputItem
from mm_adapters.inference.batcher import DynamicBatcher
from mm_adapters.inference.requests import PredictRequest
from mm_adapters.inference.server import create_app
from mm_adapters.lightning import ClassificationModule, export_adapter

TEXTS = ["the film was great", "the film was awful and dull", "a lovely fun superb film", "boring"]


def export(root, backbone_name: str, adapter: str, names: list[str], seed: int):
    backbone = load_backbone(backbone_name)
    add_adapter(backbone.model, adapter, AdapterConfig.preset("pfeiffer", reduction_factor=4))
    module = ClassificationModule(backbone, len(names), class_names=names)
    import torch

    with torch.no_grad():  # a head that is not uniform, so answers differ between tasks and inputs
        generator = torch.Generator().manual_seed(seed)
        module.head.weight.copy_(torch.randn(module.head.weight.shape, generator=generator))
    return export_adapter(module, root / adapter)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {
        "mood": export(root / "text", "demo-bert", "mood", ["neg", "pos"], 1),
        "topic": export(root / "text", "demo-bert", "topic", ["business", "sport", "world"], 2),
        "spare": export(root / "spare", "demo-bert", "spare", ["no", "yes"], 3),
        "photo": export(root / "image", "demo-vit", "photo", ["blue", "red"], 4),
        "voice": export(root / "audio", "demo-wav2vec2", "voice", ["one", "zero"], 5),
    }


@pytest.fixture(scope="module")
def server(exports):
    session = InferenceSession.from_exports(
        [str(exports[name]) for name in ("mood", "topic", "photo", "voice")]
    )
    app = create_app(
        session, max_batch_size=16, batch_timeout=0.05, max_body_bytes=200_000, max_audio_seconds=1.0
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    yield url, app
    instance.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def offline(exports):
    return InferenceSession.from_exports([str(exports[name]) for name in ("mood", "topic", "photo")])


def png(color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), color).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(
        buffer, (0.1 * np.sin(np.arange(int(16000 * seconds)) / 5)).astype(np.float32), 16000, format="WAV"
    )
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_text_answers_equal_offline_prediction(server, offline):
    url, _ = server
    answer = requests.post(
        f"{url}/predict", json={"task": ["mood", "topic"], "text": TEXTS[0], "top_k": 2}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    expected = offline.predict([InputItem("x", "text", TEXTS[0])], ["mood", "topic"], top_k=2)[0]
    got = answer.json()["predictions"]
    assert set(got) == {"mood", "topic"}
    for task in ("mood", "topic"):
        assert got[task]["label"] == expected[task]["label"]
        assert got[task]["probability"] == pytest.approx(expected[task]["probability"], abs=1e-5)
        assert len(got[task]["top_k"]) == 2


def test_concurrent_mixed_task_requests_each_get_their_own_answer(server, offline):
    url, app = server
    jobs = [(TEXTS[i % 4], ["mood", "topic"][i % 2]) for i in range(24)]
    before = app.state.batcher.batches
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda job: requests.post(f"{url}/predict", json={"task": job[1], "text": job[0]},
                                                          timeout=120), jobs))  # fmt: skip
    assert all(a.status_code == 200 for a in answers)
    assert app.state.batcher.batches - before < len(jobs)  # requests were batched together
    for (text, task), answer in zip(jobs, answers, strict=True):
        expected = offline.predict([InputItem("x", "text", text)], [task])[0][task]
        got = answer.json()["predictions"]
        assert list(got) == [task] and got[task]["label"] == expected["label"]
        assert got[task]["probability"] == pytest.approx(expected["probability"], abs=1e-5)


def test_image_as_base64_and_as_upload(server, offline):
    url, _ = server
    expected = offline.predict([InputItem("x", "image", Image.open(io.BytesIO(png())))], ["photo"])[0][
        "photo"
    ]
    as_json = requests.post(f"{url}/predict", json={"task": "photo", "image": b64(png())}, timeout=60).json()
    upload = requests.post(f"{url}/predict", files={"file": ("x.png", png(), "image/png")}, data={"task": "photo"},
                           timeout=60).json()  # fmt: skip
    assert (
        as_json["predictions"]["photo"]["label"]
        == upload["predictions"]["photo"]["label"]
        == expected["label"]
    )


def test_no_task_named_asks_every_task_that_reads_the_input(server):
    """Text with no task on a server that also holds image and audio tasks was a 422 ('photo reads image')."""
    url, _ = server
    text = requests.post(f"{url}/predict", json={"text": "a fine day"}, timeout=60)
    assert text.status_code == 200, text.text
    assert set(text.json()["predictions"]) == {"mood", "topic"}
    image = requests.post(f"{url}/predict", files={"file": ("x.png", png(), "image/png")}, timeout=60)
    assert set(image.json()["predictions"]) == {"photo"}
    named = requests.post(f"{url}/predict", json={"task": ["mood", "photo"], "text": "x"}, timeout=60)
    assert (
        named.status_code == 422 and named.json()["field"] == "text"
    )  # a task named outright is still checked


def test_tasks_health_and_docs(server):
    url, _ = server
    tasks = {task["name"]: task for task in requests.get(f"{url}/tasks", timeout=10).json()["tasks"]}
    assert tasks["topic"]["class_names"] == ["business", "sport", "world"] and tasks["photo"]["inputs"] == [
        "image"
    ]
    assert tasks["mood"]["task"] == "classification"
    assert requests.get(f"{url}/health", timeout=10).json()["status"] == "ok"
    paths = requests.get(f"{url}/openapi.json", timeout=10).json()["paths"]
    assert {"/predict", "/tasks", "/tasks/{name}", "/health"} <= set(paths)
    assert requests.get(f"{url}/docs", timeout=10).status_code == 200


def test_add_and_remove_a_task_while_requests_are_in_flight(server, exports):
    url, _ = server
    added = requests.post(f"{url}/tasks", json={"folder": str(exports["spare"])}, timeout=120)
    assert added.status_code == 201 and added.json()["name"] == "spare"
    assert (
        requests.post(f"{url}/tasks", json={"folder": str(exports["spare"])}, timeout=60).status_code == 409
    )
    with ThreadPoolExecutor(8) as pool:
        flying = [pool.submit(requests.post, f"{url}/predict", json={"task": "spare", "text": t}, timeout=120)
                  for t in TEXTS * 4]  # fmt: skip
        removed = requests.delete(f"{url}/tasks/spare", timeout=120)
        statuses = [future.result().status_code for future in flying]
    assert removed.status_code == 200
    assert set(statuses) <= {200, 404} and 200 in statuses  # accepted ones answered; later ones: unknown task
    gone = requests.post(f"{url}/predict", json={"task": "spare", "text": "x"}, timeout=60)
    assert gone.status_code == 404 and gone.json()["field"] == "task"
    assert "spare" not in [t["name"] for t in requests.get(f"{url}/tasks", timeout=10).json()["tasks"]]


BAD = [
    ({"task": "nope", "text": "x"}, 404, "task"),
    ({"task": "mood", "image": b64(png())}, 422, "image"),
    ({"task": "photo", "text": "a photo"}, 422, "text"),
    ({"task": "photo", "image": b64(b"not an image")}, 422, "image"),
    ({"task": "photo", "image": "%%% not base64"}, 422, "image"),
    ({"task": "mood", "text": "   "}, 422, "text"),
    ({"task": "mood"}, 422, "input"),
    ({"task": "mood", "text": "x", "image": b64(png())}, 422, "input"),
    ({"task": "voice", "audio": b64(wav(2.0))}, 413, "audio"),
    ({"task": "voice", "audio": b64(b"RIFF not audio")}, 422, "audio"),
    ({"task": "mood", "text": "x", "top_k": 0}, 422, "top_k"),
    ({"task": "mood", "text": "x" * 300_000}, 413, "body"),
]


@pytest.mark.parametrize("body, status, field", BAD, ids=[f"{s}-{f}-{i}" for i, (_, s, f) in enumerate(BAD)])
def test_bad_requests_get_4xx_naming_the_field(server, body, status, field):
    url, _ = server
    answer = requests.post(f"{url}/predict", json=body, timeout=60)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and answer.json()["error"]
    assert requests.post(f"{url}/predict", json={"task": "voice", "audio": b64(wav(0.5))}, timeout=60).ok


def test_malformed_json_and_unknown_task_removal(server):
    url, _ = server
    broken = requests.post(
        f"{url}/predict", data=b"{not json", headers={"content-type": "application/json"}, timeout=10
    )
    assert broken.status_code == 400 and broken.json()["field"] == "body"
    assert requests.delete(f"{url}/tasks/nope", timeout=10).status_code == 404
    missing = requests.post(f"{url}/tasks", json={"folder": "/no/such/export"}, timeout=10)
    assert missing.status_code == 422 and "does not exist" in missing.json()["error"]
    no_folder = requests.post(f"{url}/tasks", json={}, timeout=10)  # was FastAPI's {"detail": [...]}
    assert no_folder.status_code == 422 and no_folder.json()["field"] == "folder"
    garbage = requests.post(
        f"{url}/tasks", data=b"garbage", headers={"content-type": "application/json"}, timeout=10
    )
    assert garbage.status_code == 400 and garbage.json()["field"] == "body"


class FailingSession(InferenceSession):
    """Fails any batch holding the text 'boom', like a row that breaks the model."""

    def __init__(self):
        super().__init__()
        self.tasks = {
            "t": SimpleNamespace(kind="ctc", export=SimpleNamespace(has_adapter=False, inputs=("text",)))
        }

    def predict(self, items, tasks=None, top_k=1, candidates=None):
        if any(item.value == "boom" for item in items):
            raise RuntimeError("boom")
        return [{"t": {"label": item.value}} for item in items]


def test_a_failing_row_fails_only_its_own_request():
    batcher = DynamicBatcher(FailingSession(), max_batch_size=8, timeout=0.2).start()
    try:
        futures = {
            v: batcher.submit(PredictRequest(InputItem(v, "text", v), ["t"])) for v in ["a", "boom", "c"]
        }
        assert futures["a"].result(timeout=10) == {"t": {"label": "a"}}
        assert futures["c"].result(timeout=10) == {"t": {"label": "c"}}
        with pytest.raises(RuntimeError, match="boom"):
            futures["boom"].result(timeout=10)
    except FutureTimeout:
        pytest.fail("the batcher did not answer")
    finally:
        batcher.stop()


def test_serve_finds_the_exports_below_a_folder(exports):
    found = export_folders([str(exports["mood"].parent.parent)])
    assert sorted(found) == sorted(
        str(exports[name]) for name in ("mood", "photo", "spare", "topic", "voice")
    )


def test_the_console_script_has_both_commands_and_serve_refuses_a_missing_export(tmp_path, capsys):
    from mm_adapters.cli import build_parser
    from mm_adapters.cli import serve as serve_command

    help_text = build_parser().format_help()
    assert "predict" in help_text and "serve" in help_text
    assert serve_command.main([str(tmp_path / "nothing"), "--port", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_mixed_batch_is_one_routed_pass_equal_to_each_row_alone(offline):
    from mm_adapters import Route
    from mm_adapters.inference import run_mixed_batch
    from mm_adapters.state import get_state

    items = [InputItem(str(i), "text", TEXTS[i % 4]) for i in range(6)]
    asked = [["topic"], ["mood"], ["mood", "topic"], ["topic"], ["mood"], ["topic"]]
    answers = run_mixed_batch(offline, items, asked, top_k=2)
    backbone = next(b for key, b in offline.backbones.items() if key.name == "demo-bert")
    assert isinstance(get_state(backbone.model).composition, Route)  # rows met their own adapters in one pass
    for item, names, answer in zip(items, asked, answers, strict=True):
        assert list(answer) == names
        for name in names:
            alone = offline.predict([item], [name], top_k=2)[0][name]
            assert answer[name]["label"] == alone["label"]
            assert answer[name]["probability"] == pytest.approx(alone["probability"], abs=1e-5)
            assert [r["label"] for r in answer[name]["top_k"]] == [r["label"] for r in alone["top_k"]]
