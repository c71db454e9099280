"""Tiny example data for a new plugin, written with the standard library only (``csv``, ``zlib``, ``wave``).

Two classes that a small model separates in a few epochs: numeric rows around two centres, sentences from two
vocabularies, bright and dark images (PNG), low and high tones (WAV).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from polygraft.scaffold_data import write_example_data
    >>> csv_file = write_example_data("vector", Path(tempfile.mkdtemp()))
    >>> csv_file.read_text().splitlines()[0]
    'f1,f2,f3,f4,label'
"""

from __future__ import annotations

import csv
import math
import random
import struct
import wave
import zlib
from pathlib import Path

ROWS = 40
GOOD = ["great", "wonderful", "lovely", "bright", "happy", "superb", "fine", "charming"]
BAD = ["awful", "dreadful", "dull", "grim", "sad", "boring", "poor", "gloomy"]
FILLER = ["the", "a", "film", "day", "was", "very", "really", "and", "story", "music"]


def _png(path: Path, pixels: list[list[int]]) -> None:
    """A grayscale 8-bit PNG."""
    raw = b"".join(b"\x00" + bytes(row) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", len(pixels[0]), len(pixels), 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def _wav(path: Path, samples: list[float], rate: int) -> None:
    """A mono 16-bit WAV."""
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(b"".join(struct.pack("<h", int(max(-1.0, min(1.0, s)) * 32767)) for s in samples))


def write_example_data(kind: str, directory: Path, *, rows: int = ROWS, seed: int = 0) -> Path:
    """Write ``directory/example.csv`` (and the files it lists) for input ``kind``; returns the CSV path."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / "example.csv"
    table: list[list[object]] = []
    if kind == "vector":
        header = ["f1", "f2", "f3", "f4", "label"]
        for index in range(rows):
            label = "a" if index % 2 == 0 else "b"
            centre = 10.0 if label == "a" else 14.0
            table.append([round(centre + rng.gauss(0, 1.5), 3) for _ in range(4)] + [label])
    elif kind == "text":
        header = ["text", "label"]
        for index in range(rows):
            label = "positive" if index % 2 == 0 else "negative"
            words = rng.sample(GOOD if label == "positive" else BAD, 2) + rng.sample(FILLER, 3)
            rng.shuffle(words)
            table.append([" ".join(words), label])
    elif kind == "vision":
        header = ["path", "label"]
        (directory / "images").mkdir(exist_ok=True)
        for index in range(rows):
            label = "bright" if index % 2 == 0 else "dark"
            base = 190 if label == "bright" else 60
            pixels = [[max(0, min(255, base + rng.randint(-40, 40))) for _ in range(16)] for _ in range(16)]
            _png(directory / "images" / f"{index:03d}.png", pixels)
            table.append([f"images/{index:03d}.png", label])
    elif kind == "speech":
        header = ["path", "label"]
        (directory / "clips").mkdir(exist_ok=True)
        rate = 16000
        for index in range(rows):
            label = "loud" if index % 2 == 0 else "quiet"
            level = 0.6 if label == "loud" else 0.05
            frequency = rng.uniform(200, 800)
            samples = [level * math.sin(2 * math.pi * frequency * t / rate) + rng.gauss(0, 0.01)
                       for t in range(rate // 4)]
            _wav(directory / "clips" / f"{index:03d}.wav", samples, rate)
            table.append([f"clips/{index:03d}.wav", label])
    else:
        raise ValueError(f"unknown input kind {kind!r}")
    with file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(table)
    return file
