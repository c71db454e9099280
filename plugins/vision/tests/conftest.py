"""Shared fixtures of the vision plugin tests: tiny random-init timm models, data made on the spot."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

import polygraft_vision.plugin as vision_plugin


@pytest.fixture
def catalog(polygraft_catalog_factory):
    """Builtins plus this plugin only (isolated from whatever else is installed)."""
    return polygraft_catalog_factory(plugins=[("vision", vision_plugin)])


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    from polygraft_vision.shapes import generate_shapes

    directory = tmp_path_factory.mktemp("shapes") / "scenes"
    generate_shapes(directory, num_images=24, image_size=64, max_shapes=3, seed=3)
    return directory


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but that holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def _write_image(path: Path, colour: str = "red", size: tuple[int, int] = (20, 16), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


@pytest.fixture
def png_claiming():
    return _png_claiming


@pytest.fixture
def write_image():
    return _write_image
