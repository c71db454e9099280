"""Fixtures of the export and serve tests: tiny random-init model options and inputs made here (nothing
downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "mat", "in", "park", "film", "was", "not", "very", "good",
         "and", "actors", "were", "bad", "paris", "john", "went", "to", "new", "york"]


def write_vocab(directory: Path) -> Path:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *[f"##{c}" for c in letters]]
    path = directory / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n")
    return path


def bert_options(directory: Path, **extra: Any) -> dict[str, Any]:
    return {"tokenizer": str(write_vocab(directory)), "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "max_length": 32, **extra}


def clip(seconds: float, frequency: float, rate: int = 16000) -> dict[str, Any]:
    t = np.arange(int(seconds * rate)) / rate
    return {"audio": (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), "sample_rate": rate}


@pytest.fixture
def tiny_bert(tmp_path: Path) -> dict[str, Any]:
    """Options of a tiny random BERT (hidden 32, 2 layers) with a WordPiece vocabulary written here."""
    return bert_options(tmp_path)


@pytest.fixture
def make_clip() -> Any:
    """``make_clip(seconds, frequency)`` → a raw audio example (16 kHz sine)."""
    return clip


def rounded(value: Any, digits: int = 5) -> Any:
    """``value`` with every float rounded (predictions from two runtimes differ in the last float bits)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, digits) for item in value]
    return value


@pytest.fixture
def same_predictions() -> Any:
    """``same_predictions(a, b)``: equal labels, texts and spans, floats equal to 5 decimals."""
    return lambda a, b: rounded(a) == rounded(b)


@pytest.fixture(scope="session")
def served_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A text, an image and an audio model (tiny, random), saved once for every serve test."""
    import torch

    import polygraft
    from polygraft.model_io import save_model

    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    tasks = {
        "sentiment": polygraft.create_task("classification", backbone="bert", label_names=["neg", "pos"],
                                           backbone_options=bert_options(root)),
        "digits": polygraft.create_task("classification", backbone="timm", label_names=[str(i) for i in range(10)],
                                        backbone_options={"model_name": "test_resnet", "image_size": 32}),
        "spoken": polygraft.create_task("classification", backbone="wav2vec2", label_names=["yes", "no"],
                                        backbone_options={"size": "tiny"}),
    }
    return {name: save_model(task, root / name) for name, task in tasks.items()}


@pytest.fixture
def served(served_models: dict[str, Path]) -> Any:
    """``served(backend="pytorch", only=(), **settings)`` → a TestClient over the served models."""
    from fastapi.testclient import TestClient

    from polygraft.serve.app import create_app
    from polygraft.serve.backends import load_backend
    from polygraft.serve.settings import ServeSettings

    dirs = served_models
    clients = []

    def make(backend: str = "pytorch", only: tuple[str, ...] = (), **settings: Any) -> Any:
        backends = [load_backend(path, name=name, backend=backend) for name, path in dirs.items()
                    if not only or name in only]
        client = TestClient(create_app(backends, ServeSettings(**settings)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def png_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise((40, 30), 64).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def wav_bytes() -> bytes:
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, clip(0.5, 330.0)["audio"], 16000, format="WAV")
    return buffer.getvalue()
