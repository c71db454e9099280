"""``av-digits``: a handwritten digit image paired with a spoken digit of the same class, each degraded so that
alone it is an unreliable witness, together a good one.

The images are a registered image dataset's (``mnist-5k`` by default: its train / val / test split), the clips a
registered audio dataset's (``spoken-digits``: speaker-disjoint, so test clips come from voices never heard in
training); both are opened through the caller's catalog, so core imports no plugin. Each image is paired with a
clip of the same digit drawn from the same split. Degradation: a square of ``occlusion`` × the image's side,
filled with random pixels, hides part of the digit, plus Gaussian pixel noise (``image_noise``, on 0-255); the clip
gets white noise at ``snr_db`` (signal-to-noise ratio in dB over the clip). The defaults were chosen so that each
modality alone scores in the 70-85% band with the example recipes (see examples/multimodal/README.md).

Written once per option set into ``$POLYGRAFT_CACHE/av-digits/<key>/`` (PNG images, 16 kHz WAV clips,
``train.csv``, ``val.csv``, ``test.csv``, ``all.csv``; columns ``image``, ``audio``, ``label``) and read with
``multimodal-manifest``; ``fields: [image]`` or ``[audio]`` keeps one modality.

Example:
    >>> import tempfile, polygraft
    >>> tiny = dict(image_dataset="digits", image_options={}, train_size=20, val_size=10, test_size=10,
    ...             audio_options={"voices": ["en-us", "en+f3", "en-029"], "speeds": [160], "pitches": [50],
    ...                            "val_voices": 1, "test_voices": 1}, cache_dir=tempfile.mkdtemp())
    >>> data = polygraft.load_dataset("av-digits", split="test", **tiny)
    >>> len(data), data.label_names[:3], data[0]["audio"]["sample_rate"]
    (10, ['0', '1', '2'], 16000)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from polygraft.errors import ConfigError, DataError
from polygraft.fusion.generated.common import (
    GENERATED_SPLITS,
    build_once,
    cache_folder,
    choose_fields,
    open_split,
    write_manifest,
)
from polygraft.fusion.manifest import MultimodalManifest

LABELS = [str(d) for d in range(10)]
COLUMNS = {"image": "image", "audio": "audio"}
SAMPLE_RATE = 16000
FORMAT = 1


def occlude(pixels: np.ndarray, *, fraction: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (H, W uint8) with a random-noise square of side ``fraction`` × the image and Gaussian noise."""
    out = pixels.astype(np.float64)
    height, width = out.shape
    side = round(fraction * min(height, width))
    if side > 0:
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        out[top:top + side, left:left + side] = rng.uniform(0, 255, size=(side, side))
    if noise > 0:
        out += rng.normal(0.0, noise, size=out.shape)
    return out.clip(0, 255).astype(np.uint8)


def add_noise(audio: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` plus white noise ``snr_db`` below its power, scaled to a peak of 0.9 (16-bit WAV safe)."""
    power = float(np.mean(audio.astype(np.float64) ** 2)) or 1e-8
    noisy = audio + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=audio.shape)
    peak = float(np.abs(noisy).max()) or 1.0
    return (noisy * (0.9 / peak)).astype(np.float32)


def _resampled(example: dict[str, Any]) -> np.ndarray:
    audio, rate = np.asarray(example["audio"], dtype=np.float32), int(example["sample_rate"])
    if rate == SAMPLE_RATE:
        return audio
    import torch
    import torchaudio

    return torchaudio.functional.resample(torch.from_numpy(audio), rate, SAMPLE_RATE).numpy()


def _clips_by_digit(source: Any, name: str) -> dict[int, list[int]]:
    names = list(source.label_names or [])
    if len(names) != 10:
        raise DataError(f"av-digits: audio dataset {name!r} must have ten digit classes, got {names}")
    found: dict[int, list[int]] = {digit: [] for digit in range(10)}
    for index in range(len(source)):
        found[names.index(str(source[index]["label"]))].append(index)
    return found


def _write(folder: Path, parts: dict[str, tuple[Any, Any]], *, sizes: dict[str, int | None], occlusion: float,
           image_noise: float, snr_db: float, seed: int) -> dict[str, Any]:
    import soundfile
    from PIL import Image

    header, every, counts = ["image", "audio", "label"], [], {}
    for split in GENERATED_SPLITS:
        images, clips = parts[split]
        by_digit = _clips_by_digit(clips, "audio")
        order = list(range(len(images)))
        random.Random(f"av-digits/{seed}/{split}/order").shuffle(order)
        limit = sizes[split]
        chosen = order if limit is None else order[:limit]
        pick = random.Random(f"av-digits/{seed}/{split}/pairs")
        noise = np.random.default_rng([seed, GENERATED_SPLITS.index(split)])
        (folder / split).mkdir()
        rows = []
        for position, index in enumerate(chosen):
            example = images[index]
            digit = LABELS.index(str(example["label"]))
            if not by_digit[digit]:
                raise DataError(f"av-digits: the {split} audio has no clip of digit {digit}")
            clip = clips[pick.choice(by_digit[digit])]
            pixels = np.asarray(example["image"].convert("L"))
            stem = f"{split}/{position:05d}"
            Image.fromarray(occlude(pixels, fraction=occlusion, noise=image_noise, rng=noise), mode="L").save(
                folder / f"{stem}.png")
            soundfile.write(str(folder / f"{stem}.wav"), add_noise(_resampled(clip), snr_db=snr_db, rng=noise),
                            SAMPLE_RATE, subtype="PCM_16")
            rows.append([f"{stem}.png", f"{stem}.wav", LABELS[digit]])
        write_manifest(folder / f"{split}.csv", header, rows)
        every += rows
        counts[split] = len(rows)
    write_manifest(folder / "all.csv", header, every)
    return {"sizes": counts}


def create_av_digits(*, split: str = "train", image_dataset: str = "mnist-5k", image_options: dict[str, Any] | None = None,
                     audio_dataset: str = "spoken-digits", audio_options: dict[str, Any] | None = None,
                     train_size: int | None = None, val_size: int = 500, test_size: int = 1000,
                     occlusion: float = 0.5, image_noise: float = 60.0, snr_db: float = -6.0, seed: int = 0,
                     fields: list[str] | None = None, cache_dir: str | None = None,
                     catalog: Any = None) -> MultimodalManifest:
    """Dataset ``av-digits`` (see the module docstring).

    Args:
        split: ``train``, ``val``, ``test`` or ``all``.
        image_dataset, image_options: the digit images (``mnist-5k``, ``digits``) and their options; its
            ``val_size``/``test_size`` are these.
        audio_dataset, audio_options: the spoken digits (``spoken-digits``: voices, speeds, pitches...).
        train_size: at most this many training pairs (default: every training image).
        occlusion: side of the hiding square, as a fraction of the image's. image_noise: pixel noise std (0-255).
        snr_db: the clips' signal-to-noise ratio in dB.
        seed: the image split, the pairing and the noise. fields: ``[image]``, ``[audio]`` or both (default).
        cache_dir: where to write the set (default ``$POLYGRAFT_CACHE/av-digits``).
        catalog: supplied by core: the datasets are opened through it.
    """
    from polygraft.components import build

    if not 0 <= occlusion < 1 or image_noise < 0:
        raise ConfigError(f"av-digits: occlusion must be in [0, 1) and image_noise ≥ 0, got {occlusion}, {image_noise}")
    if val_size < 1 or test_size < 1 or (train_size is not None and train_size < 1):
        raise ConfigError("av-digits: train_size, val_size and test_size must be ≥ 1")
    image_options, audio_options = dict(image_options or {}), dict(audio_options or {})
    params = {"dataset": "av-digits", "image_dataset": image_dataset, "image_options": image_options,
              "audio_dataset": audio_dataset, "audio_options": audio_options, "train_size": train_size,
              "val_size": val_size, "test_size": test_size, "occlusion": occlusion, "image_noise": image_noise,
              "snr_db": snr_db, "seed": seed, "format": FORMAT}
    folder = cache_folder("av-digits", params, cache_dir)

    def write(tmp: Path) -> dict[str, Any]:
        nonlocal catalog
        if catalog is None:
            from polygraft.plugins import build_catalog

            catalog = build_catalog()
        parts = {}
        for part in GENERATED_SPLITS:
            images = build(catalog, "dataset", image_dataset, {"seed": seed, "val_size": val_size,
                           "test_size": test_size, **image_options, "split": part}, where="av-digits image_options")
            clips = build(catalog, "dataset", audio_dataset, {**audio_options, "split": part},
                          where="av-digits audio_options")
            parts[part] = (images, clips)
        return _write(tmp, parts, sizes={"train": train_size, "val": None, "test": None}, occlusion=occlusion,
                      image_noise=image_noise, snr_db=snr_db, seed=seed)

    build_once(folder, params, write)
    return open_split(folder, split, choose_fields(COLUMNS, fields, name="av-digits"), name="av-digits",
                      label_names=LABELS)


__all__ = ["add_noise", "create_av_digits", "occlude"]
