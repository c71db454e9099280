"""``shape-captions``: an image of one coloured shape and a caption; the label says whether the caption describes it.

Each example draws a shape (``circle``, ``square``, ``triangle``, ``cross``) in a colour (``red``, ``green``,
``blue``, ``yellow``) at a random size and place on a lightly noisy background, and a caption from a few templates
("a red circle", "the circle is red", ...). Half the captions describe the image (``match``); the others change
its colour, its shape or both, a third of the time each (``mismatch``). The image's shape and colour are uniform
whatever the label, and so is the caption's: **each modality alone is at chance by construction** (50%), and only a model that relates the two
can do better. Splits are drawn from separate seeds, and no image appears in two splits.

Written once per option set into ``$POLYGRAFT_CACHE/shape-captions/<key>/`` as PNG files with ``train.csv``,
``val.csv``, ``test.csv`` and ``all.csv`` (columns ``image``, ``caption``, ``label``), and read with
``multimodal-manifest``; ``fields: [image]`` or ``[caption]`` keeps one modality (the single-modality baselines).
``label: attributes`` makes it a multi-label set instead: each example's labels are the image's shape and colour
(``["circle", "red"]``; for ``multilabel-classification``; the caption then says nothing reliable about them).

Example:
    >>> import tempfile, polygraft
    >>> data = polygraft.load_dataset("shape-captions", split="val", val_size=8, train_size=8, test_size=8,
    ...                               image_size=16, cache_dir=tempfile.mkdtemp())
    >>> len(data), data.label_names, data[0]["image"].size, sorted(data.fields)
    (8, ['match', 'mismatch'], (16, 16), ['caption', 'image'])
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError
from polygraft.fusion.generated.common import (
    GENERATED_SPLITS,
    build_once,
    cache_folder,
    choose_fields,
    choose_label,
    open_split,
    write_manifest,
)
from polygraft.fusion.manifest import MultimodalManifest

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
SHAPES = ("circle", "square", "triangle", "cross")
TEMPLATES = ("a {colour} {shape}", "the {shape} is {colour}", "there is a {colour} {shape}",
             "a picture of a {colour} {shape}", "{colour} {shape} on a grey background")
LABELS = ["match", "mismatch"]
LABEL_COLUMNS: dict[str, str | list[str]] = {"match": "label", "attributes": ["shape", "colour"]}
COLUMNS = {"image": "image", "caption": "text"}
FORMAT = 2
SEED_OFFSETS = {"train": 0, "val": 1, "test": 2}


def draw(shape: str, colour: str, *, size: int, rng: random.Random) -> Any:
    """One ``size`` × ``size`` RGB image of ``shape`` in ``colour``, at a random scale and place."""
    import numpy as np
    from PIL import Image, ImageDraw

    noise = np.random.default_rng(rng.getrandbits(32)).normal(0.0, 6.0, size=(size, size))
    background = (200 + noise).clip(0, 255).astype("uint8")
    image = Image.fromarray(np.stack([background] * 3, axis=-1), mode="RGB")
    pen = ImageDraw.Draw(image)
    extent = rng.uniform(0.45, 0.8) * size
    left, top = rng.uniform(0, size - extent), rng.uniform(0, size - extent)
    box = (left, top, left + extent, top + extent)
    fill = COLOURS[colour]
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    elif shape == "triangle":
        pen.polygon([(left + extent / 2, top), (left, top + extent), (left + extent, top + extent)], fill=fill)
    else:
        bar = extent / 3
        pen.rectangle((left + bar, top, left + 2 * bar, top + extent), fill=fill)
        pen.rectangle((left, top + bar, left + extent, top + 2 * bar), fill=fill)
    return image


def caption_for(colour: str, shape: str, rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(colour=colour, shape=shape)


def _example(rng: random.Random) -> tuple[str, str, str, str, str]:
    """(shape, colour, caption colour, caption shape, label): the caption matches half the time; a mismatch changes
    the colour, the shape or both, a third of the time each (so a model must read both colour and shape)."""
    shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
    if rng.random() < 0.5:
        return shape, colour, colour, shape, "match"
    change = rng.choice(("colour", "shape", "both"))
    said_colour = rng.choice([c for c in COLOURS if c != colour]) if change != "shape" else colour
    said_shape = rng.choice([s for s in SHAPES if s != shape]) if change != "colour" else shape
    return shape, colour, said_colour, said_shape, "mismatch"


def _write(folder: Path, sizes: dict[str, int], *, image_size: int, seed: int) -> dict[str, Any]:
    seen: set[str] = set()
    header = ["image", "caption", "label", "shape", "colour"]
    every = []
    for split in GENERATED_SPLITS:
        rng = random.Random(f"shape-captions/{seed}/{SEED_OFFSETS[split]}")
        (folder / split).mkdir()
        rows: list[list[Any]] = []
        while len(rows) < sizes[split]:
            shape, colour, said_colour, said_shape, label = _example(rng)
            image = draw(shape, colour, size=image_size, rng=rng)
            key = hashlib.sha1(image.tobytes()).hexdigest()
            if key in seen:  # never the same image in two examples (or two splits)
                continue
            seen.add(key)
            name = f"{split}/{len(rows):05d}.png"
            image.save(folder / name)
            rows.append([name, caption_for(said_colour, said_shape, rng), label, shape, colour])
        write_manifest(folder / f"{split}.csv", header, rows)
        every += rows
    write_manifest(folder / "all.csv", header, every)
    return {"sizes": sizes}


def create_shape_captions(*, split: str = "train", train_size: int = 2000, val_size: int = 500, test_size: int = 1000,
                          image_size: int = 32, seed: int = 0, fields: list[str] | None = None,
                          label: str = "match", cache_dir: str | None = None) -> MultimodalManifest:
    """Dataset ``shape-captions`` (see the module docstring).

    Args:
        split: ``train``, ``val``, ``test`` or ``all``.
        train_size, val_size, test_size: examples per split. image_size: pixels per side.
        seed: which examples (every split has its own stream of it).
        fields: the fields to keep (``[image]``, ``[caption]``; default both).
        label: ``match`` (match / mismatch, the default) or ``attributes`` (the image's shape and colour, a list).
        cache_dir: where to write the set (default ``$POLYGRAFT_CACHE/shape-captions``).
    """
    choose_label(label, list(LABEL_COLUMNS), name="shape-captions")
    sizes = {"train": train_size, "val": val_size, "test": test_size}
    if min(sizes.values()) < 1 or image_size < 8:
        raise ConfigError(f"shape-captions: every split needs ≥ 1 example and image_size ≥ 8, got {sizes}, {image_size}")
    params = {"dataset": "shape-captions", "sizes": sizes, "image_size": image_size, "seed": seed, "format": FORMAT}
    folder = cache_folder("shape-captions", params, cache_dir)
    build_once(folder, params, lambda tmp: _write(tmp, sizes, image_size=image_size, seed=seed))
    return open_split(folder, split, choose_fields(COLUMNS, fields, name="shape-captions"), name="shape-captions",
                      label=LABEL_COLUMNS[label], label_names=LABELS if label == "match" else None)


__all__ = ["COLOURS", "SHAPES", "create_shape_captions", "draw"]
