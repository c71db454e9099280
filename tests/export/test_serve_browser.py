"""The served page in a real headless Chromium (Debian's ``chromium``, driven by Playwright): pick a model, type text
or upload an image, read the prediction the page renders, and, with Explain, the explanation beside it. The server
runs on a free loopback port for the test and is stopped after it. Skips, saying why, only where no Chromium or
Playwright is installed (``make setup`` installs both)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, tiny_bert: dict[str, Any]) -> Any:
    import torch
    import uvicorn

    import polygraft
    from polygraft.model_io import save_model
    from polygraft.serve.app import create_app
    from polygraft.serve.backends import load_backend
    from polygraft.serve.settings import ServeSettings

    torch.manual_seed(0)
    tasks = {"reviews": polygraft.create_task("classification", backbone="bert", label_names=["rotten", "fresh"],
                                              backbone_options=tiny_bert),
             "digits": polygraft.create_task("classification", backbone="timm", label_names=list("0123456789"),
                                             backbone_options={"model_name": "test_resnet", "image_size": 32}),
             "shapes": polygraft.create_task("detection", backbone="timm", label_names=["circle", "square"],
                                             backbone_options={"model_name": "test_resnet", "features": "maps",
                                                               "image_size": 64}, score_thresh=0.01),
             "asr": polygraft.create_task("ctc", backbone="wav2vec2", label_names=["<blank>", "<unk>", " ", "o"],
                                          backbone_options={"size": "tiny"})}
    with torch.no_grad():  # boxes scored above the page's 0.3 and a CTC head that says something
        tasks["shapes"].head.detector.head.classification_head.cls_logits.bias.fill_(4.0)
        tasks["asr"].head.linear.bias.copy_(torch.tensor([0.0, -9.0, -9.0, 3.0]))
    backends = [load_backend(save_model(task, tmp_path / name), name=name) for name, task in tasks.items()]
    port = _free_port()
    config = uvicorn.Config(create_app(backends, ServeSettings(port=port)), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start within 20 s"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


def test_page_predicts_text_and_an_uploaded_image(server: str, tmp_path: Path, wav_bytes: bytes) -> None:
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (make system-deps installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make setup)")
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.effect_noise((28, 28), 80).convert("RGB").save(image)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page()
            outside: list[str] = []
            local = (server, "blob:" + server, "data:")  # the page's own URLs (a blob: is the uploaded image)
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(local) else None)
            page.goto(server + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=15000)
            page.select_option("#model", "reviews")
            page.fill("#text", "a quietly devastating film")
            page.click("#predict")
            page.wait_for_selector("#result[data-state=done]", timeout=15000)
            top = page.inner_text("#result .top-label")
            assert top.split(" ")[0] in ("rotten", "fresh")
            assert page.locator("#result .label-row").count() == 2
            assert page.is_hidden("#explanation")

            page.click("#explain")  # the explanation beside the prediction: one highlighted span per word
            page.wait_for_selector("#explanation[data-state=done]", timeout=30000)
            page.wait_for_selector("#result[data-state=done]", timeout=15000)
            words = page.locator("#explanation .words span")
            assert [words.nth(i).inner_text() for i in range(words.count())] == ["a", "quietly", "devastating", "film"]
            assert page.inner_text("#explanation .top-label") == f"Why {top.split(' ')[0]}: integrated-gradients"
            assert "within" in page.inner_text("#explanation .completeness")
            page.select_option("#method", "gradcam")  # a method that does not apply: the error names those that do
            page.click("#explain")
            page.wait_for_selector("#explanation[data-state=error]", timeout=15000)
            assert "integrated-gradients, occlusion" in page.inner_text("#explanation .error")
            page.select_option("#method", "")

            page.select_option("#model", "digits")
            assert page.is_visible("#file") and not page.is_visible("#text")
            page.set_input_files("#file", str(image))
            page.click("#predict")
            page.wait_for_function("document.querySelector('#result').dataset.state === 'done' && "
                                   "document.querySelector('#result').textContent.includes('digits')", timeout=15000)
            rows = page.locator("#result .label-row")
            assert rows.count() == 5  # the top five of ten digits, each with its probability
            probabilities = [float(rows.nth(i).locator(".prob").inner_text()) for i in range(5)]
            assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
            page.click("#explain")  # an image's explanation: Grad-CAM's overlay, drawn by the server
            page.wait_for_selector("#explanation[data-state=done] img.figure", timeout=30000)
            assert page.evaluate("document.querySelector('#explanation img.figure').naturalWidth") > 0
            assert "gradcam" in page.inner_text("#explanation .top-label")

            page.set_input_files("#file", str(tmp_path / "digit.png"))
            (tmp_path / "notes.png").write_text("not an image")
            page.set_input_files("#file", str(tmp_path / "notes.png"))
            page.click("#predict")
            page.wait_for_selector("#result[data-state=error]", timeout=15000)
            assert "cannot read 'notes.png' as image" in page.inner_text("#result .error")

            page.select_option("#model", "shapes")  # detection: boxes drawn over the uploaded image
            page.set_input_files("#file", str(image))
            page.click("#predict")
            page.wait_for_function("document.querySelector('#result .detections') !== null && "
                                   "!document.querySelector('#canvas').hidden", timeout=15000)
            assert int(page.inner_text("#result .detections").split(" ")[0]) > 0
            assert page.evaluate("document.querySelector('#canvas').width") == 28

            (tmp_path / "clip.wav").write_bytes(wav_bytes)  # CTC: the transcript
            page.select_option("#model", "asr")
            page.set_input_files("#file", str(tmp_path / "clip.wav"))
            page.click("#predict")
            page.wait_for_selector("#result .transcript", timeout=15000)
            assert set(page.inner_text("#result .transcript")) == {"o"}
            assert outside == []  # the page asked nothing of any other host (no CDN, no analytics)
        finally:
            browser.close()
