"""``polygraft serve``: the API (health, models, predict on JSON text and multipart image/audio, batches), micro-
batching of concurrent requests, the ONNX backend answering as PyTorch does, timeouts, and bad input getting a 4xx
JSON error that names the problem while the server goes on serving."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from polygraft.serve.batching import MicroBatcher


def test_health_models_and_predictions(served: Any, png_bytes: bytes, wav_bytes: bytes) -> None:
    client = served()
    assert client.get("/health").json()["status"] == "ok"
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert {name: m["input"] for name, m in models.items()} == {"sentiment": "text", "digits": "image",
                                                                 "spoken": "audio"}
    one = client.post("/v1/models/sentiment/predict", json={"text": "a good film"}).json()
    assert one["backend"] == "pytorch" and one["predictions"][0]["label"] in ("neg", "pos")
    batch = client.post("/v1/models/sentiment/predict", json={"inputs": [{"text": "good"}, {"text": "bad film"}]})
    assert len(batch.json()["predictions"]) == 2
    image = client.post("/v1/models/digits/predict", files={"file": ("seven.png", png_bytes, "image/png")}).json()
    assert set(image["predictions"][0]["probabilities"]) == {str(i) for i in range(10)}
    audio = client.post("/v1/models/spoken/predict", files=[("file", ("a.wav", wav_bytes, "audio/wav")),
                                                             ("file", ("b.wav", wav_bytes, "audio/wav"))]).json()
    assert [p["label"] for p in audio["predictions"]] == [audio["predictions"][0]["label"]] * 2
    assert "/v1/models/{name}/predict" in client.get("/openapi.json").json()["paths"]
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    page = client.get("/").text
    assert "<script src=\"/static/app.js\">" in page and "http" not in page.replace("http-equiv", "")


@pytest.mark.parametrize(("send", "status", "words"), [
    (lambda c: c.post("/v1/models/sentiment/predict", content=b"", headers={"content-type": "application/json"}),
     400, "empty body"),
    (lambda c: c.post("/v1/models/sentiment/predict", content=b"{nope", headers={"content-type": "application/json"}),
     400, "not valid JSON"),
    (lambda c: c.post("/v1/models/sentiment/predict", json={"text": "x", "colour": "red"}), 422,
     "unknown field 'colour'"),
    (lambda c: c.post("/v1/models/sentiment/predict", json={"text": 3}), 400, "must be a string"),
    (lambda c: c.post("/v1/models/sentimnet/predict", json={"text": "x"}), 404, "did you mean 'sentiment'"),
    (lambda c: c.post("/v1/models/digits/predict", files={"file": ("x.png", b"not an image", "image/png")}), 400,
     "cannot read 'x.png' as image"),
    (lambda c: c.post("/v1/models/spoken/predict", files={"file": ("notes.wav", b"hello, I am text\n" * 40,
                                                                     "audio/wav")}), 400, "cannot read 'notes.wav' as audio"),
    (lambda c: c.post("/v1/models/digits/predict", content=b"x", headers={"content-type": "text/csv"}), 415,
     "unsupported Content-Type"),
    (lambda c: c.post("/v1/models/digits/predict", json={"image": "/etc/hostname"}), 415, "upload the file"),
    (lambda c: c.post("/v1/models/digits/predict", files={"file": ("big.png", b"\0" * (101 * 2 ** 20), "image/png")}),
     413, "above the server's limit"),
])
def test_bad_input_gets_a_json_error_and_serving_continues(served: Any, send: Any, status: int, words: str) -> None:
    client = served()
    response = send(client)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert client.post("/v1/models/sentiment/predict", json={"text": "still here"}).status_code == 200


def test_streamed_upload_over_the_limit_is_cut_off(served: Any) -> None:
    client = served(max_upload_mb=1)

    def chunks() -> Any:
        for _ in range(8):
            yield b"\0" * 2 ** 18
    response = client.post("/v1/models/digits/predict", content=chunks(),
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413 and "1,048,576" in response.json()["error"]["message"]


def test_concurrent_requests_are_batched_and_answers_do_not_mix() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def predict(self, items: list[int]) -> list[int]:
            self.sizes.append(len(items))
            time.sleep(0.02)
            return [item * 10 for item in items]

    async def run(max_batch: int) -> tuple[list[Any], list[int]]:
        model = Recorder()
        batcher = MicroBatcher(model, max_batch=max_batch, max_wait_ms=20)
        try:
            answers = await asyncio.gather(*(batcher.submit([i, i + 100], timeout=10) for i in range(12)))
        finally:
            await batcher.close()
        return answers, model.sizes

    answers, sizes = asyncio.run(run(8))
    assert answers == [[i * 10, (i + 100) * 10] for i in range(12)]
    assert max(sizes) == 8 and sum(sizes) == 24 and len(sizes) < 12  # requests of 2 joined, never split
    _, alone = asyncio.run(run(1))
    assert alone == [2] * 12  # a request bigger than max_batch still runs, alone


def test_timeout_gets_504_and_the_next_request_is_answered(served: Any) -> None:
    client = served(timeout_s=0.2)
    backend = client.app.app.state.backends["sentiment"]  # the FastAPI app inside the upload limit
    original = backend.predict
    backend.predict = lambda items: (time.sleep(0.6), original(items))[1]
    response = client.post("/v1/models/sentiment/predict", json={"text": "slow"})
    assert response.status_code == 504 and "--timeout" in response.json()["error"]["message"]
    backend.predict = original
    time.sleep(0.5)  # the slow batch finishes in its thread
    assert client.post("/v1/models/sentiment/predict", json={"text": "fast"}).status_code == 200


def test_onnx_backend_answers_as_pytorch(served: Any, png_bytes: bytes) -> None:
    """One model (exporting takes seconds; every task's ONNX decoding is tested in test_export_onnx)."""
    torch_client, onnx_client = served(only=("digits",)), served(backend="onnx", only=("digits",))
    requests = [("digits", {"files": [("file", ("d.png", png_bytes, "image/png")),
                                      ("file", ("e.png", png_bytes[:-1] + b"\0", "image/png"))]})]
    for name, request in requests:
        want = torch_client.post(f"/v1/models/{name}/predict", **request).json()
        got = onnx_client.post(f"/v1/models/{name}/predict", **request).json()
        assert got["backend"] == "onnx"
        for a, b in zip(want["predictions"], got["predictions"]):
            assert a["label"] == b["label"]
            assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-4 for k in a["probabilities"])


def test_cli_serve_wires_runs_and_flags(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import polygraft
    from polygraft.cli import main
    from polygraft.model_io import save_model
    from polygraft.serve import app as app_module

    task = polygraft.create_task("classification", backbone="toy", num_classes=2, backbone_options={"in_features": 2})
    first, second = save_model(task, tmp_path / "a" / "model"), save_model(task, tmp_path / "b" / "model")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(app_module, "run_server", lambda backends, settings: seen.update(b=backends, s=settings))
    assert main(["serve", str(first), f"other={second}", "--max-batch", "4", "--max-wait-ms", "2", "--timeout", "3",
                 "--max-upload-mb", "1.5", "--port", "0"]) == 0
    assert [b.name for b in seen["b"]] == ["a", "other"] and seen["s"].host == "127.0.0.1"
    assert (seen["s"].max_batch, seen["s"].max_wait_ms, seen["s"].timeout_s, seen["s"].max_upload_bytes) == \
        (4, 2.0, 3.0, int(1.5 * 2 ** 20))
    assert main(["serve", str(first), str(tmp_path / "a")]) == 2  # both would be called 'a': refused, with advice
