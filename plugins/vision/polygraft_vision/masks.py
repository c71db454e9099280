"""Segmentation masks: reading mask PNGs safely, and the ``segmentation-folder`` source (image + mask-PNG folders).

A mask is a PNG whose pixel values are class indices: a palette image (``P``, as PASCAL VOC ships them; the palette
only colours the indices for people) or a greyscale one (``L``, or 16-bit for more than 256 classes). Value 255
marks unlabelled pixels (VOC's object borders) unless ``ignore_index`` says otherwise. Layouts:

- PASCAL VOC: ``path/JPEGImages/<id>.jpg``, ``path/SegmentationClass/<id>.png``, and the ids of each split in
  ``path/ImageSets/Segmentation/<split>.txt`` (all masks when the list is missing). The 21 VOC class names are
  the default.
- Plain folders: ``path/images/<name>.<ext>`` and ``path/masks/<name>.png`` (or ``path/<split>/images`` and
  ``path/<split>/masks``), matched by file stem; give ``images=`` and ``masks=`` to point elsewhere.

Class names come from ``classes=[...]``, else ``classes.txt`` in ``path`` (line *i* names mask value *i*), else
VOC's for the VOC layout. When opened, every mask is checked against its image: a missing mask, a size that
differs from the image's, an RGB mask, or a value that is neither a class nor the ignore index is a
:class:`~polygraft.errors.DataError` naming the file, or with ``skip_invalid=true`` a counted skip.
``validate="header"`` checks sizes only (values are then checked when an example is read).

Example:
    >>> import tempfile, numpy as np, pathlib
    >>> from PIL import Image
    >>> from polygraft_vision.masks import create_segmentation_folder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "images").mkdir(); (root / "masks").mkdir()
    >>> Image.new("RGB", (8, 6)).save(root / "images" / "a.png")
    >>> Image.fromarray(np.ones((6, 8), dtype=np.uint8)).save(root / "masks" / "a.png")
    >>> source = create_segmentation_folder(path=str(root), classes=["background", "thing"])
    >>> source[0]["mask"].shape, source.label_names
    ((6, 8), ['background', 'thing'])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.datasource import DataSource, files_fingerprint
from polygraft_vision.images import DEFAULT_MAX_PIXELS, open_image

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
MASK_MODES = ("P", "L", "1", "I", "I;16", "I;16B", "I;16L")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def voc_palette() -> list[int]:
    """PASCAL VOC's 256-colour palette (flat RGB list) for writing masks people can look at."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette += [red, green, blue]
    return palette


def save_mask(mask: np.ndarray, path: str | Path) -> Path:
    """Write an ``(H, W)`` class-index mask as a VOC-style palette PNG (values ≤ 255) or a 16-bit PNG."""
    path = Path(path)
    if int(mask.max(initial=0)) <= 255 and int(mask.min(initial=0)) >= 0:
        image = Image.fromarray(mask.astype(np.uint8), mode="P")
        image.putpalette(voc_palette())
    else:
        image = Image.fromarray(mask.astype(np.uint16))
    image.save(path)
    return path


def mask_header(path: Path) -> tuple[tuple[int, int], str]:
    """``((width, height), mode)`` of a mask file without decoding it (DataError naming the file)."""
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except FileNotFoundError as exc:
        raise DataError("mask file does not exist", path=path) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"not a readable mask image: {exc}", path=path) from exc


def read_mask(path: str | Path) -> np.ndarray:
    """An ``(H, W)`` int64 array of class indices (palette indices, not colours), or DataError naming the file."""
    path = Path(path)
    (_, mode) = mask_header(path)
    if mode not in MASK_MODES:
        raise DataError(f"the mask is a {mode} image; masks hold class indices: save it as a palette ('P') or "
                        "greyscale ('L') PNG whose pixel values are class numbers", path=path)
    try:
        with Image.open(path) as image:
            return np.asarray(image).astype(np.int64)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"mask data is corrupt or truncated: {exc}", path=path) from exc


def mask_problem(mask: np.ndarray, num_classes: int, ignore_index: int) -> str | None:
    """Why a mask's values are wrong, or None."""
    values = np.unique(mask)
    bad = [int(v) for v in values if not (0 <= v < num_classes or v == ignore_index)]
    if bad:
        return (f"mask value(s) {bad[:8]} are not classes (values 0..{num_classes - 1} are classes, "
                f"{ignore_index} marks unlabelled pixels)")
    return None


class SegmentationSource(DataSource):
    """``(image, mask, origin)`` records checked when opened; examples are ``{"image", "mask", "_origin"}``."""

    storage = "files"

    def __init__(self, records: Sequence[tuple[Path, Path, str]], *, label_names: Sequence[str], name: str,
                 ignore_index: int = 255, skip_invalid: bool = False, validate: str = "full",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        super().__init__()
        if validate not in ("full", "header"):
            raise ConfigError(f"{name}: validate must be 'full' (decode masks, check values) or 'header' (sizes "
                              f"only), got {validate!r}")
        if len(label_names) < 2:
            raise ConfigError(f"{name}: a segmentation set needs at least 2 classes, got {list(label_names)}")
        self.name, self.label_names = name, list(label_names)
        self.ignore_index, self.skip_invalid, self.max_pixels = ignore_index, skip_invalid, max_pixels
        self.records: list[tuple[Path, Path, str]] = []
        for image_path, mask_path, origin in records:
            problem = self._problem(image_path, mask_path, validate)
            if problem is None:
                self.records.append((image_path, mask_path, origin))
                continue
            message, reason, where = problem
            if not skip_invalid:
                raise DataError(f"{message} (pass skip_invalid=true to skip and count such images)", path=where)
            self.skip(reason, where)

    def _problem(self, image_path: Path, mask_path: Path, validate: str) -> tuple[str, str, Path] | None:
        try:
            image = open_image(image_path, max_pixels=self.max_pixels, decode=False)
        except DataError as exc:
            return exc.reason, "unreadable image", image_path
        if not mask_path.is_file():
            return f"image {image_path.name} has no mask (looked for {mask_path})", "image without a mask", image_path
        try:
            size, mode = mask_header(mask_path)
        except DataError as exc:
            return exc.reason, "unreadable mask", mask_path
        if mode not in MASK_MODES:
            return (f"the mask is a {mode} image; masks hold class indices: save it as a palette ('P') or "
                    "greyscale ('L') PNG whose values are class numbers"), "mask is not an index image", mask_path
        if size != image.size:
            return (f"the mask is {size[0]}x{size[1]} but its image {image_path.name} is {image.size[0]}x"
                    f"{image.size[1]}; a mask must have its image's size"), "mask size differs from its image", mask_path
        if validate == "full":
            try:
                wrong = mask_problem(read_mask(mask_path), len(self.label_names), self.ignore_index)
            except DataError as exc:
                return exc.reason, "unreadable mask", mask_path
            if wrong:
                return f"{wrong}; classes: {self.label_names}", "mask value that is not a class", mask_path
        return None

    def __len__(self) -> int:
        return len(self.records)

    def _example(self, index: int) -> dict[str, Any]:
        image_path, mask_path, origin = self.records[index]
        mask = read_mask(mask_path)
        wrong = mask_problem(mask, len(self.label_names), self.ignore_index)
        if wrong:
            raise DataError(f"{wrong}; classes: {self.label_names}", path=mask_path)
        return {"image": open_image(image_path, max_pixels=self.max_pixels), "mask": mask, "_origin": origin}

    def fingerprint(self) -> str | None:
        """Every image and mask file's path, size and modification time, and the reading options."""
        return files_fingerprint([type(self).__name__, self.name, self.label_names, self.ignore_index,
                                  self.max_pixels],
                                 [*((image, origin) for image, _, origin in self.records),
                                  *((mask, "mask") for _, mask, _ in self.records)])


def _class_names(classes: Sequence[str] | None, root: Path, voc: bool) -> list[str]:
    if classes:
        return [str(c) for c in classes]
    listed = root / "classes.txt"
    if listed.is_file():
        names = [line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(set(names)) != len(names):
            raise DataError("class names are listed twice", path=listed)
        return names
    if voc:
        return list(VOC_CLASSES)
    raise ConfigError(f"segmentation-folder: name the classes with classes: [background, ...] or a classes.txt in "
                      f"{root} (line i names mask value i)")


def _voc_records(root: Path, split: str | None) -> list[tuple[Path, Path, str]]:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt" if split else None
    if listing is not None and listing.is_file():
        lines = listing.read_text(encoding="utf-8").splitlines()
        ids = [(line.strip(), f"{listing}:{number}") for number, line in enumerate(lines, 1) if line.strip()]
    else:
        ids = [(mask.stem, str(mask)) for mask in sorted((root / "SegmentationClass").glob("*.png"))]
    records = []
    for stem, origin in ids:
        image = next((root / "JPEGImages" / f"{stem}{s}" for s in IMAGE_SUFFIXES
                      if (root / "JPEGImages" / f"{stem}{s}").is_file()), root / "JPEGImages" / f"{stem}.jpg")
        records.append((image, root / "SegmentationClass" / f"{stem}.png", origin))
    return records


def create_segmentation_folder(*, path: str | None = None, images: str | None = None, masks: str | None = None,
                               classes: list[str] | None = None, split: str | None = None,
                               mask_suffix: str = "", ignore_index: int = 255, skip_invalid: bool = False,
                               validate: str = "full", max_pixels: int = DEFAULT_MAX_PIXELS) -> SegmentationSource:
    """Dataset ``segmentation-folder``: images with mask PNGs (VOC layout or images/ + masks/ folders).

    Args:
        path: the dataset root (VOC: holds ``JPEGImages`` and ``SegmentationClass``).
        images, masks: the image and mask folders, when not ``path/images`` and ``path/masks``.
        classes: class names (mask value i = the i-th name); default ``classes.txt``, or VOC's 21 for VOC.
        split: ``train`` / ``val`` / ...: VOC's ``ImageSets/Segmentation/<split>.txt``, or ``path/<split>/``.
        mask_suffix: what the mask's stem adds to its image's (``_mask`` for ``a.jpg`` + ``a_mask.png``).
        ignore_index: the mask value of unlabelled pixels.
        skip_invalid: skip and count bad pairs instead of raising.
        validate: ``full`` (decode every mask when opened) or ``header`` (sizes only).
    """
    if path is None and (images is None or masks is None):
        raise ConfigError("segmentation-folder needs path=... (a VOC root or a folder with images/ and masks/), "
                          "or both images=... and masks=...")
    root = Path(path) if path is not None else Path(images).parent  # type: ignore[arg-type]
    if path is not None and not root.is_dir():
        raise DataError("segmentation folder does not exist", path=root)
    voc = path is not None and (root / "SegmentationClass").is_dir() and images is None
    if voc:
        records = _voc_records(root, split)
    else:
        base = root / split if split and path is not None and (root / split).is_dir() else root
        image_dir = Path(images) if images else base / "images"
        mask_dir = Path(masks) if masks else base / "masks"
        for folder in (image_dir, mask_dir):
            if not folder.is_dir():
                raise DataError("folder does not exist (expected images/ and masks/ folders, or the VOC layout)",
                                path=folder)
        records = [(file, mask_dir / f"{file.stem}{mask_suffix}.png", str(file))
                   for file in sorted(image_dir.iterdir())
                   if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES and not file.name.startswith(".")]
    if not records:
        raise DataError("no images found", path=root)
    source = SegmentationSource(records, label_names=_class_names(classes, root, voc), name="segmentation-folder",
                                ignore_index=ignore_index, skip_invalid=skip_invalid, validate=validate,
                                max_pixels=max_pixels)
    if not voc:
        used = {mask.name for _, mask, _ in records}
        for extra in sorted(mask_dir.glob("*.png")):
            if extra.name not in used:
                source.skip("mask without an image", extra)
    return source
