"""``POST /v1/models/{name}/explain``: the served model's explanation (polygraft explain) beside its prediction, with
predict's input errors and the explainer's own (a method that does not apply names those that do)."""

from __future__ import annotations

import base64
from typing import Any

import pytest


def _png(data_url: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    return base64.b64decode(data_url[len(prefix):])


def test_text_explanation_scores_the_words_and_matches_the_prediction(served: Any) -> None:
    client = served(only=("sentiment",))
    predicted = client.post("/v1/models/sentiment/predict", json={"text": "a good film"}).json()["predictions"][0]
    response = client.post("/v1/models/sentiment/explain", json={"text": "a good film"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "sentiment" and body["kind"] == "tokens" and body["method"] == "integrated-gradients"
    assert body["prediction"]["label"] == predicted["label"]
    assert body["methods_that_apply"] == ["integrated-gradients", "occlusion"]
    (explained,) = body["explanations"]
    assert explained["label"] == predicted["label"]
    assert [word for word, _ in explained["scores"]] == ["a", "good", "film"]
    assert explained["completeness"]["within_tolerance"]
    total = sum(score for _, score in explained["scores"])
    gap = explained["completeness"]["f_input"] - explained["completeness"]["f_baseline"]
    assert total == pytest.approx(gap, rel=0.05, abs=1e-4)  # the words' scores add up to what is explained
    assert body["figure"] is None and "files" not in body  # the page draws words itself; no server paths
    other = client.post("/v1/models/sentiment/explain?method=occlusion&target=" +
                        ("neg" if predicted["label"] == "pos" else "pos"), json={"text": "a good film"}).json()
    assert other["method"] == "occlusion" and other["explanations"][0]["label"] != predicted["label"]


def test_image_and_audio_explanations_come_with_their_figure(served: Any, png_bytes: bytes,
                                                             wav_bytes: bytes) -> None:
    client = served(only=("digits", "spoken"))
    upload = {"file": ("seven.png", png_bytes, "image/png")}
    body = client.post("/v1/models/digits/explain?method=gradcam&target=7", files=upload).json()
    assert body["method"] == "gradcam" and body["kind"] == "image"
    (explained,) = body["explanations"]
    assert explained["label"] == "7" and len(explained["shape"]) == 2
    assert _png(body["figure"]).startswith(b"\x89PNG\r\n\x1a\n")
    audio = client.post("/v1/models/spoken/explain?method=occlusion",
                        files={"file": ("a.wav", wav_bytes, "audio/wav")}).json()
    assert audio["kind"] == "waveform" and audio["explanations"][0]["scores"]
    assert _png(audio["figure"]).startswith(b"\x89PNG")


@pytest.mark.parametrize(("send", "status", "words"), [
    (lambda c: c.post("/v1/models/sentiment/explain?method=gradcam", json={"text": "a film"}), 422,
     "Methods that do: integrated-gradients, occlusion"),
    (lambda c: c.post("/v1/models/sentiment/explain?target=poss", json={"text": "a film"}), 422, "'pos'"),
    (lambda c: c.post("/v1/models/sentiment/explain?method=shap", json={"text": "a film"}), 422, "shap"),
    (lambda c: c.post("/v1/models/sentiment/explain", json={"text": 3}), 400, "must be a string"),
    (lambda c: c.post("/v1/models/sentiment/explain", json={"inputs": [{"text": "a"}, {"text": "b"}]}), 422,
     "one example per request"),
    (lambda c: c.post("/v1/models/sentimnet/explain", json={"text": "x"}), 404, "did you mean 'sentiment'"),
    (lambda c: c.post("/v1/models/digits/explain", files={"file": ("x.png", b"not an image", "image/png")}), 400,
     "cannot read 'x.png' as image"),
])
def test_bad_explain_requests_get_a_json_error_and_serving_continues(served: Any, send: Any, status: int,
                                                                     words: str) -> None:
    client = served(only=("sentiment", "digits"))
    response = send(client)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert client.post("/v1/models/sentiment/explain", json={"text": "still here"}).status_code == 200
