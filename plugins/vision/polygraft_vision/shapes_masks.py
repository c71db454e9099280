"""Scenes of shapes with exact per-pixel masks: the ``synthetic-shapes-segmentation`` dataset.

The scenes are :func:`polygraft_vision.shapes.draw_scene`'s (noisy dark background, non-overlapping bright shapes);
each shape's mask is the pixels of its colour inside its box, so the masks are exact. A generated folder holds
``images/``, ``masks/`` (VOC-style palette PNGs: 0 background, 1 circle, 2 square, 3 triangle), ``classes.txt`` and
``annotations.json`` (the same masks as COCO run-length encoding), so both the ``segmentation-folder`` and the
``coco-segmentation`` readers can open it (``layout: folder`` or ``coco``).

Example:
    >>> import tempfile
    >>> from polygraft_vision.shapes_masks import create_synthetic_shapes_segmentation
    >>> train = create_synthetic_shapes_segmentation(size=2, image_size=64, cache_dir=tempfile.mkdtemp())
    >>> train.label_names, train[0]["mask"].shape
    (['background', 'circle', 'square', 'triangle'], (64, 64))
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polygraft.assets import cache_dir as polygraft_cache
from polygraft.errors import ConfigError
from polygraft.interfaces.datasource import DataSource
from polygraft_vision.masks import create_segmentation_folder, save_mask
from polygraft_vision.shapes import SHAPES, draw_scene

BACKGROUND = "background"
LAYOUTS = ("folder", "coco")


def scene_mask(image: Any, objects: Sequence[tuple[str, list[int]]], classes: Sequence[str]) -> np.ndarray:
    """The class-index mask of a drawn scene: inside each exact box, the pixels bright in every channel."""
    pixels = np.asarray(image).astype(np.int16)
    mask = np.zeros(pixels.shape[:2], dtype=np.uint8)
    for kind, (x0, y0, x1, y1) in objects:
        inside = (pixels[y0:y1, x0:x1] >= 130).all(axis=-1)
        mask[y0:y1, x0:x1][inside] = list(classes).index(kind) + 1
    return mask


def generate_shape_masks(directory: str | Path, *, num_images: int = 200, image_size: int = 128,
                         max_shapes: int = 4, classes: Sequence[str] = SHAPES, seed: int = 0) -> Path:
    """Write scenes, masks, ``classes.txt`` and COCO ``annotations.json`` into ``directory`` (atomically)."""
    from pycocotools import mask as mask_utils

    unknown = set(classes) - set(SHAPES)
    if unknown:
        raise ConfigError(f"unknown shape classes {sorted(unknown)}; choose from {SHAPES}")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".shape-masks-", dir=directory.parent))
    for folder in ("images", "masks"):
        (staging / folder).mkdir()
    rng = random.Random(seed)
    min_size, max_size = max(6, image_size // 10), max(7, image_size // 3)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        image, objects = draw_scene(rng, image_size=image_size, classes=classes, max_shapes=max_shapes,
                                    min_size=min_size, max_size=max_size)
        mask = scene_mask(image, objects, classes)
        name = f"{index:06d}.png"
        image.save(staging / "images" / name)
        save_mask(mask, staging / "masks" / name)
        images.append({"id": index + 1, "file_name": f"images/{name}", "width": image_size, "height": image_size})
        for kind, (x0, y0, x1, y1) in objects:
            value = list(classes).index(kind) + 1
            own = np.zeros_like(mask)
            own[y0:y1, x0:x1] = mask[y0:y1, x0:x1] == value
            rle = mask_utils.encode(np.asfortranarray(own))
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": value,
                                "segmentation": {"size": [image_size, image_size], "counts": rle["counts"].decode()},
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": int(own.sum()), "iscrowd": 0})
    (staging / "classes.txt").write_text("\n".join([BACKGROUND, *classes]) + "\n")
    coco = {"info": {"description": "polygraft synthetic shapes with masks", "seed": seed}, "images": images,
            "annotations": annotations,
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)]}
    (staging / "annotations.json").write_text(json.dumps(coco))
    if directory.exists():
        shutil.rmtree(directory)
    staging.rename(directory)
    return directory


def create_synthetic_shapes_segmentation(*, split: str = "train", size: int | None = None, image_size: int = 128,
                                         max_shapes: int = 4, seed: int = 0, layout: str = "folder",
                                         cache_dir: str | None = None) -> DataSource:
    """Dataset ``synthetic-shapes-segmentation``: scenes with exact masks, generated into the cache on first use.

    ``split`` picks a disjoint seed (train / val / test); ``size`` defaults to 400 train and 100 otherwise;
    ``layout`` reads the folder as image + mask PNGs (``folder``) or its COCO RLE file (``coco``).
    """
    offsets = {"train": 0, "val": 1, "test": 2}
    if split not in offsets:
        raise ConfigError(f"synthetic-shapes-segmentation: split must be one of {sorted(offsets)}, got {split!r}")
    if layout not in LAYOUTS:
        raise ConfigError(f"synthetic-shapes-segmentation: layout must be one of {LAYOUTS}, got {layout!r}")
    size = size if size is not None else (400 if split == "train" else 100)
    params = {"size": size, "image_size": image_size, "max_shapes": max_shapes,
              "seed": seed * 1000 + offsets[split], "version": 1}
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    folder = (Path(cache_dir) if cache_dir else polygraft_cache("synthetic-shapes-segmentation")) / f"{split}-{key}"
    if not (folder / "annotations.json").is_file():
        generate_shape_masks(folder, num_images=size, image_size=image_size, max_shapes=max_shapes,
                             seed=params["seed"])
    if layout == "coco":
        from polygraft_vision.coco_masks import create_coco_segmentation

        source: DataSource = create_coco_segmentation(annotations=str(folder / "annotations.json"))
    else:
        source = create_segmentation_folder(path=str(folder))
    source.name = "synthetic-shapes-segmentation"
    return source
