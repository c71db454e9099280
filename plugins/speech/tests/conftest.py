"""Shared fixtures of the speech plugin tests: clips written on the spot, tiny espeak-ng data in tmp dirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

import polygraft_speech.plugin as speech_plugin

TINY_DIGITS = {"voices": ["en-us", "en+f3", "en-029", "en+m3"], "speeds": [170], "pitches": [50],
               "val_voices": 1, "test_voices": 1}
"""Four voices, one speed and pitch: 40 clips, generated in well under a second."""


@pytest.fixture
def catalog(polygraft_catalog_factory):
    """Builtins plus this plugin only (isolated from whatever else is installed)."""
    return polygraft_catalog_factory(plugins=[("speech", speech_plugin)])


def tone(seconds: float, rate: int, *, channels: int = 1, frequency: float = 440.0) -> np.ndarray:
    """A sine tone, ``(frames,)`` or ``(frames, channels)`` with a different level per channel."""
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    if channels == 1:
        return wave
    return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1)


def _write_clip(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1,
                frequency: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), tone(seconds, rate, channels=channels, frequency=frequency), rate)
    return path


@pytest.fixture
def write_clip():
    """``write_clip(path, seconds=0.5, rate=16000, channels=1, frequency=440.0)`` → path."""
    return _write_clip


@pytest.fixture(name="tone")
def tone_fixture():
    """``tone(seconds, rate, channels=1, frequency=440.0)`` → float32 array."""
    return tone


@pytest.fixture
def tiny_digits() -> dict:
    """Options of a tiny spoken-digits set (the one ``digits_cache`` holds)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in TINY_DIGITS.items()}


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory) -> Path:
    """A tiny spoken-digits cache shared by the tests that only read it."""
    from polygraft_speech.datasets.spoken import create_spoken_digits

    folder = tmp_path_factory.mktemp("digits")
    create_spoken_digits(split="train", cache_dir=str(folder), **TINY_DIGITS)
    return folder
