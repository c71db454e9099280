"""Safe image reading: refuse huge or broken files with a :class:`DataError`, convert every mode to RGB.

A header claiming enormous dimensions is refused *before* any pixel is decoded (``max_pixels``), so a
malicious or damaged file can never exhaust memory. Truncated or non-image files raise ``DataError`` naming
the file. Greyscale, alpha, palette, CMYK and 16-bit images become 8-bit RGB the way a person expects
(alpha composited on white, 16-bit scaled rather than clipped).

Example:
    >>> from PIL import Image
    >>> from polygraft_vision.images import to_rgb
    >>> to_rgb(Image.new("I;16", (4, 4), 65535)).getpixel((0, 0))
    (255, 255, 255)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from polygraft.errors import DataError
from polygraft.paths import file_problem

DEFAULT_MAX_PIXELS = 64_000_000
"""Refuse images with more pixels than this (about 8000 x 8000) unless the caller raises the limit."""


def open_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, decode: bool = True) -> Image.Image:
    """Open ``path`` as an RGB image, or raise :class:`DataError` naming the file.

    With ``decode=False`` only the header is read and checked (fast validation of a whole folder).
    """
    path = Path(path)
    problem = file_problem(path)  # a FIFO would block the reader forever: refuse it before opening
    if problem is not None:
        raise DataError(f"image file {problem}" if problem == "does not exist" else problem, path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except FileNotFoundError as exc:
        raise DataError("image file does not exist", path=path) from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"not a readable image: {exc}", path=path) from exc
    except OSError as exc:
        raise DataError(f"cannot open image: {exc}", path=path) from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        image.close()
        raise DataError(f"image has empty dimensions {width}x{height}", path=path)
    if width * height > max_pixels:
        image.close()
        raise DataError(
            f"image header claims {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{max_pixels:,}; raise max_pixels if the file is genuine", path=path,
        )
    if not decode:
        image.close()
        return image
    try:
        image.load()
        rgb = to_rgb(image)
    except (OSError, SyntaxError, ValueError) as exc:  # truncated data, broken chunks
        image.close()
        raise DataError(f"image data is corrupt or truncated: {exc}", path=path) from exc
    if rgb is not image:
        image.close()
    return rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, RGBA, P, CMYK, I;16, I, F...) to 8-bit RGB."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            scaled = array / 257.0
        elif mode == "I" and float(array.min()) >= 0 and float(array.max()) <= 255:
            scaled = array
        elif mode == "I" and float(array.min()) >= 0 and float(array.max()) <= 65535:
            scaled = array / 257.0  # 16-bit data in a 32-bit container (how Pillow opens some PNGs)
        elif mode == "F" and float(array.min()) >= 0 and float(array.max()) <= 1.0:
            scaled = array * 255.0
        else:  # anything else: scale the observed range into 0..255
            low, high = float(array.min()), float(array.max())
            scaled = (array - low) / max(high - low, 1e-12) * 255.0
        grey = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def as_rgb_image(value: Any, *, origin: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Accept a PIL image, a file path or an ``(H, W[, C])`` uint8 array and return an RGB PIL image."""
    if isinstance(value, Image.Image):
        width, height = value.size
        if width * height > max_pixels:
            raise DataError(f"image of {width}x{height} pixels is above the limit of {max_pixels:,}", path=origin)
        return to_rgb(value)
    if isinstance(value, str | Path):
        return open_image(value, max_pixels=max_pixels)
    if isinstance(value, np.ndarray):
        array = value
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
            return to_rgb(Image.fromarray(array.squeeze(-1) if array.ndim == 3 and array.shape[2] == 1 else array))
    raise DataError(f"expected a PIL image, a path or an HxW[xC] array for 'image', got {type(value).__name__}",
                    path=origin)
