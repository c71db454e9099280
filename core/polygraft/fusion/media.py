"""Opening the image and audio files a ``multimodal-manifest`` names, each failure a DataError naming the file.

Images open with Pillow (a header claiming more than ``max_pixels`` is refused before any pixel is decoded) and
become RGB; clips decode with soundfile (``pip install soundfile``) to mono float32 at the file's own rate, as
``{"audio": samples, "sample_rate": rate}``, which every audio preprocessor resamples from. ``check`` reads the
header only (cheap, when a manifest is opened); ``full`` decodes everything (with ``skip_invalid``).

Example:
    >>> import tempfile, pathlib
    >>> from polygraft.fusion.media import check_image
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "cat.png"
    >>> _ = bad.write_text("not an image")
    >>> check_image(bad)
    Traceback (most recent call last):
    ...
    polygraft.errors.DataError: ...cat.png: not a readable image (cannot identify image file ...)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from polygraft.errors import DataError

MAX_PIXELS = 64_000_000


def open_image(path: str | Path, *, max_pixels: int = MAX_PIXELS, decode: bool = True) -> Any:
    """``path`` as an RGB PIL image (``decode=False``: only the header is read and checked)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError("image file does not exist" if not path.exists() else "is not a file", path=path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError) as exc:
        raise DataError(f"not a readable image ({str(exc).split(' (')[0]})", path=path) from None
    width, height = image.size
    if width * height > max_pixels or width <= 0 or height <= 0:
        image.close()
        raise DataError(f"image of {width}x{height} pixels is outside the limit of {max_pixels:,}; raise "
                        "max_pixels if the file is genuine", path=path)
    if not decode:
        image.close()
        return image
    try:
        image.load()
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image data is corrupt or truncated ({exc})", path=path) from None


def check_image(path: str | Path, *, max_pixels: int = MAX_PIXELS, full: bool = False) -> None:
    """Raise a DataError naming ``path`` unless it is a readable image (its header; every pixel with ``full``)."""
    open_image(path, max_pixels=max_pixels, decode=full)


def _soundfile() -> Any:
    try:
        import soundfile
    except ImportError as exc:
        raise DataError("audio columns need the soundfile package: pip install soundfile") from exc
    return soundfile


def check_audio(path: str | Path, *, full: bool = False) -> None:
    """Raise a DataError naming ``path`` unless soundfile decodes it (its header; every sample with ``full``)."""
    soundfile = _soundfile()
    path = Path(path)
    if not path.is_file():
        raise DataError("audio file does not exist" if not path.exists() else "is not a file", path=path)
    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # soundfile's LibsndfileError, RuntimeError: not audio it can decode
        raise DataError(f"not an audio file soundfile can decode ({str(exc).split(': ')[-1].strip()})",
                        path=path) from None
    if int(info.frames) <= 0 or int(info.samplerate) <= 0:
        raise DataError("audio file holds no samples", path=path)
    if full:
        read_audio(path)


def read_audio(path: str | Path) -> dict[str, Any]:
    """``{"audio": mono float32 samples, "sample_rate": rate}`` of ``path``."""
    soundfile = _soundfile()
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # a truncated or damaged file
        raise DataError(f"audio data cannot be decoded ({str(exc).split(': ')[-1].strip()})", path=path) from None
    if samples.size == 0:
        raise DataError("audio file holds no samples", path=path)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        raise DataError("audio holds non-finite samples", path=path)
    return {"audio": np.ascontiguousarray(mono, dtype=np.float32), "sample_rate": int(rate)}


__all__ = ["MAX_PIXELS", "check_audio", "check_image", "open_image", "read_audio"]
