"""COCO detection JSON as a data source: ``{"image", "boxes" (xyxy pixels), "labels", "image_id"}``.

Bad input is named precisely: a missing image file names the file and image id, an unknown category names the
annotation id, a box outside its image, of zero / negative size or with a NaN / infinite coordinate names the
annotation id and file, an annotation without ``image_id`` or an image without ``id`` names its id or position.
With ``skip_invalid=True`` such images or annotations are skipped and counted in ``source.skipped`` instead.
Problems with the file's structure always raise, naming the file: bytes that are not UTF-8, ``images`` /
``annotations`` / ``categories`` that are not lists, a category without an integer ``id`` and duplicate image or
category ids (the label set and the image of each box would be guesses).

Example:
    >>> import tempfile
    >>> from polygraft_vision.shapes import generate_shapes
    >>> from polygraft_vision.coco import CocoSource
    >>> source = CocoSource(generate_shapes(tempfile.mkdtemp(), num_images=3, image_size=64))
    >>> sorted(source[0])
    ['_origin', 'boxes', 'image', 'image_id', 'labels']
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from polygraft.errors import DataError
from polygraft.interfaces.datasource import DataSource
from polygraft_vision.images import DEFAULT_MAX_PIXELS, open_image

BOX_TOLERANCE = 1.0
"""Boxes may overshoot the image by up to this many pixels (rounding in annotation tools); they are clipped."""


class CocoSource(DataSource):
    """Images and boxes from a COCO ``instances``-style JSON file."""

    def __init__(self, annotations: str | Path, *, images: str | Path | None = None, skip_invalid: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, validate: str | None = None) -> None:
        super().__init__()
        self.annotations_path = Path(annotations)
        self.image_root = Path(images) if images is not None else self.annotations_path.parent
        self.skip_invalid = skip_invalid
        self.max_pixels = max_pixels
        self.validate = validate or ("full" if skip_invalid else "header")
        data = self._read_json()
        image_rows = self._list(data, "images")
        annotation_rows = self._list(data, "annotations", required=False)
        self.category_names = self._categories(self._list(data, "categories"))
        self.label_names = [self.category_names[i] for i in sorted(self.category_names)]
        by_image: dict[int, list[dict[str, Any]]] = {}
        for index, ann in enumerate(annotation_rows):
            image_id = self._annotation_image(ann, index)
            if image_id is not None:
                by_image.setdefault(image_id, []).append(ann)
        self.records: list[dict[str, Any]] = []
        known: dict[int, str] = {}
        for index, image in enumerate(image_rows):
            image_id = self._image_id(image, index, known)
            if image_id is None:
                continue
            record = self._check_image(image, image_id, by_image.get(image_id, []))
            if record is not None:
                self.records.append(record)
        for image_id, anns in by_image.items():
            if image_id not in known:
                self._bad(f"annotation id {anns[0].get('id')} refers to image id {image_id}, which is not in 'images'",
                          "annotation for unknown image", count=len(anns))

    def _read_json(self) -> dict[str, Any]:
        try:
            raw = self.annotations_path.read_bytes()
        except FileNotFoundError as exc:
            raise DataError("COCO annotation file does not exist", path=self.annotations_path) from exc
        except OSError as exc:
            raise DataError(f"cannot read the COCO annotation file: {exc}", path=self.annotations_path) from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DataError(f"not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); COCO JSON must "
                            "be UTF-8: re-save the file as UTF-8", path=self.annotations_path, line=line) from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path=self.annotations_path, line=exc.lineno) from exc
        if not isinstance(data, dict) or "images" not in data:
            raise DataError("not a COCO detection file (no 'images' list)", path=self.annotations_path)
        return data

    def _list(self, data: dict[str, Any], key: str, *, required: bool = True) -> list[Any]:
        """``data[key]``, which must be a list (structure errors always raise, whatever ``skip_invalid``)."""
        if key not in data and not required:
            return []
        value = data.get(key)
        if not isinstance(value, list):
            raise DataError(f"'{key}' must be a list of objects, got {type(value).__name__}",
                            path=self.annotations_path)
        return value

    def _categories(self, categories: list[Any]) -> dict[int, str]:
        if not categories:
            raise DataError("COCO file has no categories", path=self.annotations_path)
        names: dict[int, str] = {}
        for index, category in enumerate(categories):
            where = f"category #{index}" + (f" ({category.get('name')!r})" if isinstance(category, dict) else "")
            if not isinstance(category, dict):
                raise DataError(f"{where} must be an object with 'id' and 'name', got {category!r}",
                                path=self.annotations_path)
            category_id = as_id(category.get("id"))
            if category_id is None:
                problem = "has no 'id'" if "id" not in category else f"has id {category['id']!r}, not an integer"
                raise DataError(f"{where} {problem}; every category needs an integer id that annotations' "
                                "category_id refers to", path=self.annotations_path)
            if category_id in names:
                raise DataError(f"category id {category_id} is used twice ({names[category_id]!r} and "
                                f"{category.get('name')!r}); category ids must be unique", path=self.annotations_path)
            names[category_id] = str(category.get("name", category_id))
        return names

    def _annotation_image(self, ann: Any, index: int) -> int | None:
        """The image id an annotation belongs to, or None (reported) when it has none."""
        if not isinstance(ann, dict):
            self._bad(f"annotation #{index} must be an object, got {ann!r}", "malformed annotation")
            return None
        image_id = as_id(ann.get("image_id"))
        if image_id is None:
            name = f"annotation id {ann['id']}" if "id" in ann else f"annotation #{index} (no id)"
            problem = "has no 'image_id'" if "image_id" not in ann else f"has image_id {ann['image_id']!r}"
            self._bad(f"{name} {problem}; each annotation needs the integer id of its image",
                      "annotation without image_id")
        return image_id

    def _image_id(self, image: Any, index: int, known: dict[int, str]) -> int | None:
        """The image's id, or None (reported) when it has none; duplicates always raise."""
        if not isinstance(image, dict):
            self._bad(f"image #{index} must be an object, got {image!r}", "malformed image entry")
            return None
        image_id = as_id(image.get("id"))
        if image_id is None:
            problem = "has no 'id'" if "id" not in image else f"has id {image['id']!r}, not an integer"
            self._bad(f"image #{index} ({image.get('file_name')!r}) {problem}", "image without id")
            return None
        if image_id in known:
            raise DataError(f"image id {image_id} is used twice ({known[image_id]!r} and "
                            f"{image.get('file_name')!r}); image ids must be unique", path=self.annotations_path)
        known[image_id] = str(image.get("file_name"))
        return image_id

    def _bad(self, message: str, reason: str, *, path: Path | None = None, count: int = 1) -> None:
        if not self.skip_invalid:
            raise DataError(message + " (pass skip_invalid=true to skip and count such entries)",
                            path=path or self.annotations_path)
        self.skip(reason, f"{path or self.annotations_path}: {message}", count=count)

    def _check_image(self, image: dict[str, Any], image_id: int,
                     anns: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            self._bad(f"image id {image_id} has no 'file_name'", "missing image file")
            return None
        path = self.image_root / image["file_name"]
        if not path.is_file():
            self._bad(f"image id {image.get('id')}: file {path} does not exist", "missing image file", path=path)
            return None
        declared = {key: as_id(image.get(key)) for key in ("width", "height")}
        if any(image.get(key) is not None and (value is None or value < 0) for key, value in declared.items()):
            self._bad(f"image id {image_id} ({path.name}): width and height must be whole numbers of pixels, got "
                      f"{image.get('width')!r} x {image.get('height')!r}", "bad image size")
            return None
        if self.validate != "none":
            try:
                opened = open_image(path, max_pixels=self.max_pixels, decode=self.validate == "full")
            except DataError as exc:
                self._bad(f"image id {image_id}: {exc.reason}", "unreadable image", path=path)
                return None
            width, height = opened.size
        else:
            width, height = declared["width"] or 0, declared["height"] or 0
        if declared["width"] and declared["height"] and (width, height) != (declared["width"], declared["height"]):
            self._bad(f"image id {image_id}: the JSON says {declared['width']}x{declared['height']} but the file "
                      f"is {width}x{height}", "image size mismatch", path=path)
            return None
        boxes, labels = [], []
        for ann in anns:
            if ann.get("iscrowd", 0):
                self.skip("crowd annotation (not used for training)", f"{path} annotation {ann.get('id')}")
                continue
            category = as_id(ann.get("category_id"))
            if category not in self.category_names:
                self._bad(f"annotation id {ann.get('id')} (image {path.name}): unknown category id "
                          f"{ann.get('category_id')!r}; known ids {sorted(self.category_names)}",
                          "unknown category id")
                continue
            box = self._box(ann, width, height, path)
            if box is not None:
                boxes.append(box)
                labels.append(self.category_names[category])
        return {"path": path, "image_id": image_id, "boxes": boxes, "labels": labels}

    def _box(self, ann: dict[str, Any], width: int, height: int, path: Path) -> list[float] | None:
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): bbox must be [x, y, w, h], got "
                      f"{ann.get('bbox')!r}", "malformed box")
            return None
        if not all(math.isfinite(v) for v in (x, y, w, h)):
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): box {ann['bbox']} has a NaN or infinite "
                      "coordinate", "non-finite box coordinate")
            return None
        if w <= 0 or h <= 0:
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): box {ann['bbox']} has zero or negative "
                      "size", "box of zero or negative size")
            return None
        x0, y0, x1, y1 = x, y, x + w, y + h
        t = BOX_TOLERANCE
        if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): box {ann['bbox']} lies outside the "
                      f"{width}x{height} image", "box outside the image")
            return None
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        if x1 - x0 < 1 or y1 - y0 < 1:
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): box {ann['bbox']} is under one pixel "
                      "inside the image", "box of zero or negative size")
            return None
        return [x0, y0, x1, y1]

    def __len__(self) -> int:
        return len(self.records)

    def _example(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        return {"image": open_image(record["path"], max_pixels=self.max_pixels),
                "boxes": [list(b) for b in record["boxes"]], "labels": list(record["labels"]),
                "image_id": record["image_id"], "_origin": str(record["path"])}


def as_id(value: Any) -> int | None:
    """An id as COCO writes it (an integer, or its decimal string); None for anything else (bool, NaN, 1.5...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
