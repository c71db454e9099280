"""Bad image files and every common PIL mode."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from polygraft.errors import DataError
from polygraft_vision.images import as_rgb_image, open_image, to_rgb


def test_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "noise.png"
    bad.write_bytes(np.random.default_rng(0).bytes(500))
    with pytest.raises(DataError, match=r"noise\.png"):
        open_image(bad)


def test_non_image_file(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    with pytest.raises(DataError, match=r"notes\.jpg.*not a readable image"):
        open_image(text)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"cut\.png.*(corrupt|truncated)"):
        open_image(path)


def test_enormous_header_refused_before_decoding(tmp_path, png_claiming):
    huge = png_claiming(tmp_path / "huge.png", 60_000, 60_000)  # 3.6 gigapixels claimed
    with pytest.raises(DataError, match=r"huge\.png"):
        open_image(huge)
    medium = png_claiming(tmp_path / "medium.png", 5_000, 5_000)
    with pytest.raises(DataError, match=r"25,000,000 pixels.*above the limit"):
        open_image(medium, max_pixels=1_000_000)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_image(tmp_path / "gone.png")


@pytest.mark.parametrize(("mode", "value", "expected"), [
    ("L", 128, (128, 128, 128)),
    ("LA", (200, 255), (200, 200, 200)),
    ("LA", (0, 0), (255, 255, 255)),  # fully transparent -> white background
    ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
    ("RGBA", (255, 0, 0, 128), (255, 127, 127)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("I;16", 65535, (255, 255, 255)),
    ("I;16", 32896, (128, 128, 128)),
    ("I", 65535, (255, 255, 255)),
    ("I", 1000, (4, 4, 4)),
    ("F", 0.5, (128, 128, 128)),
])
def test_modes_become_rgb(mode, value, expected):
    image = to_rgb(Image.new(mode, (4, 4), value))
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == pytest.approx(expected, abs=1)


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.info["transparency"] = 0
    assert to_rgb(image).getpixel((0, 0)) == (0, 255, 0)
    path = tmp_path / "pal.png"
    image.save(path, transparency=0)
    assert open_image(path).getpixel((0, 0)) == (0, 255, 0)


def test_sixteen_bit_png_round_trip(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((5, 5), 65535, dtype=np.uint16)).save(path)
    assert open_image(path).getpixel((2, 2)) == (255, 255, 255)


def test_arrays_and_paths(tmp_path, write_image):
    assert as_rgb_image(np.zeros((3, 3), dtype=np.uint8)).mode == "RGB"
    assert as_rgb_image(write_image(tmp_path / "a.png")).getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(DataError, match="expected a PIL image"):
        as_rgb_image(42)
