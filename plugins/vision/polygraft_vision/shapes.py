"""Scenes of coloured shapes with exact boxes, written as PNG files plus a COCO detection JSON.

Nothing labelled for detection ships in a package, so tests and recipes generate their own data. Every box
is the exact pixel extent of its shape (``[x, y, w, h]`` in COCO, integer pixels, end-exclusive).

Example:
    >>> import tempfile
    >>> from polygraft_vision.shapes import generate_shapes
    >>> annotations = generate_shapes(tempfile.mkdtemp(), num_images=2, image_size=64, seed=0)
    >>> annotations.name
    'annotations.json'
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from polygraft.paths import process_alive

SHAPES = ("circle", "square", "triangle")


def _overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over the smaller box (xyxy)."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / max(smaller, 1)


def draw_scene(rng: random.Random, *, image_size: int, classes: Sequence[str], max_shapes: int,
               min_size: int, max_size: int) -> tuple[Image.Image, list[tuple[str, list[int]]]]:
    """One scene: a noisy background and 1..max_shapes non-overlapping shapes; returns image and xyxy boxes."""
    base = np.array([rng.randint(0, 90), rng.randint(0, 90), rng.randint(0, 90)], dtype=np.int16)
    noise = np.random.default_rng(rng.randint(0, 2**31)).integers(-12, 13, (image_size, image_size, 3))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    objects: list[tuple[str, list[int]]] = []
    for _ in range(rng.randint(1, max_shapes)):
        for _attempt in range(20):
            width = rng.randint(min_size, max_size)
            height = width if rng.random() < 0.5 else rng.randint(min_size, max_size)
            x0, y0 = rng.randint(0, image_size - width), rng.randint(0, image_size - height)
            box = [x0, y0, x0 + width, y0 + height]
            if all(_overlap(box, other) == 0 for _, other in objects):
                break
        else:
            continue
        kind = rng.choice(list(classes))
        colour = (rng.randint(130, 255), rng.randint(130, 255), rng.randint(130, 255))
        corners = [x0, y0, x0 + width - 1, y0 + height - 1]  # PIL includes the last pixel
        if kind == "circle":
            draw.ellipse(corners, fill=colour)
        elif kind == "square":
            draw.rectangle(corners, fill=colour)
        else:
            draw.polygon([(x0 + (width - 1) / 2, y0), (x0, y0 + height - 1), (x0 + width - 1, y0 + height - 1)],
                         fill=colour)
        objects.append((kind, box))
    # exact boxes: measure the drawn extent of each shape's colour inside its slot
    pixels = np.asarray(image)
    exact = []
    for kind, (x0, y0, x1, y1) in objects:
        slot = pixels[y0:y1, x0:x1].astype(np.int16)
        mask = (slot >= 130).all(axis=-1)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        exact.append((kind, [x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1]))
    return image, exact


def generate_shapes(directory: str | Path, *, num_images: int = 200, image_size: int = 128, max_shapes: int = 4,
                    min_size: int | None = None, max_size: int | None = None,
                    classes: Sequence[str] = SHAPES, seed: int = 0) -> Path:
    """Write ``num_images`` scenes into ``directory/images`` and ``directory/annotations.json`` (COCO).

    Returns the annotations path. Writing goes to a temporary folder first and is moved into place, so an
    interrupted run never leaves a half-written dataset.
    """
    unknown = set(classes) - set(SHAPES)
    if unknown:
        raise ValueError(f"unknown shape classes {sorted(unknown)}; choose from {SHAPES}")
    min_size = min_size or max(6, image_size // 10)
    max_size = max_size or max(min_size + 1, image_size // 3)
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(directory.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".shapes-{os.getpid()}-", dir=directory.parent))
    try:
        return _write_scenes(staging, directory, num_images=num_images, image_size=image_size, max_shapes=max_shapes,
                             min_size=min_size, max_size=max_size, classes=classes, seed=seed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # a failed or interrupted generation leaves nothing behind


def remove_stale_staging(folder: Path) -> None:
    """Staging folders of generations whose process is gone (a killed run) are removed."""
    for stale in folder.glob(".shapes-*"):
        pid = stale.name.split("-")[1] if stale.name.count("-") >= 2 else ""
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _write_scenes(staging: Path, directory: Path, *, num_images: int, image_size: int, max_shapes: int,
                  min_size: int | None, max_size: int | None, classes: Sequence[str], seed: int) -> Path:
    (staging / "images").mkdir()
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(classes)]
    ids = {c["name"]: c["id"] for c in categories}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    rng = random.Random(seed)
    for index in range(num_images):
        image, objects = draw_scene(rng, image_size=image_size, classes=classes, max_shapes=max_shapes,
                                    min_size=min_size, max_size=max_size)
        file_name = f"images/{index:06d}.png"
        image.save(staging / file_name)
        images.append({"id": index + 1, "file_name": file_name, "width": image_size, "height": image_size})
        for kind, (x0, y0, x1, y1) in objects:
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": ids[kind],
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            })
    coco = {"info": {"description": "polygraft synthetic shapes", "seed": seed}, "images": images,
            "annotations": annotations, "categories": categories}
    (staging / "annotations.json").write_text(json.dumps(coco))
    if directory.exists():
        shutil.rmtree(directory)
    staging.rename(directory)
    return directory / "annotations.json"


def main(argv: Sequence[str] | None = None) -> int:
    """``polygraft vision-shapes OUT [--num-images N] [--image-size S] [--seed K]``: write a COCO set."""
    import argparse

    parser = argparse.ArgumentParser(prog="polygraft vision-shapes", description=main.__doc__)
    parser.add_argument("directory")
    parser.add_argument("--num-images", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--max-shapes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = generate_shapes(args.directory, num_images=args.num_images, image_size=args.image_size,
                           max_shapes=args.max_shapes, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
