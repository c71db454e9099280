"""COCO detection JSON as a data source: ``{"image", "boxes" (xyxy pixels), "labels", "image_id"}``.

Bad input is named precisely: a missing image file names the file and image id, an unknown category names the
annotation id, a box outside its image or of zero / negative size names the annotation id and file. With
``skip_invalid=True`` such images or annotations are skipped and counted in ``source.skipped`` instead.

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
        categories = sorted(data.get("categories", []), key=lambda c: c["id"])
        if not categories:
            raise DataError("COCO file has no categories", path=self.annotations_path)
        self.category_names = {int(c["id"]): str(c["name"]) for c in categories}
        self.label_names = [self.category_names[i] for i in sorted(self.category_names)]
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in data.get("annotations", []):
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        self.records: list[dict[str, Any]] = []
        for image in data.get("images", []):
            record = self._check_image(image, by_image.get(int(image["id"]), []))
            if record is not None:
                self.records.append(record)
        known = {int(image["id"]) for image in data.get("images", [])}
        for image_id, anns in by_image.items():
            if image_id not in known:
                self._bad(f"annotation {anns[0].get('id')} refers to image id {image_id}, which is not in 'images'",
                          "annotation for unknown image", count=len(anns))

    def _read_json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.annotations_path.read_text())
        except FileNotFoundError as exc:
            raise DataError("COCO annotation file does not exist", path=self.annotations_path) from exc
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path=self.annotations_path, line=exc.lineno) from exc
        if not isinstance(data, dict) or "images" not in data:
            raise DataError("not a COCO detection file (no 'images' list)", path=self.annotations_path)
        return data

    def _bad(self, message: str, reason: str, *, path: Path | None = None, count: int = 1) -> None:
        if not self.skip_invalid:
            raise DataError(message + " (pass skip_invalid=true to skip and count such entries)",
                            path=path or self.annotations_path)
        self.skip(reason, f"{path or self.annotations_path}: {message}", count=count)

    def _check_image(self, image: dict[str, Any], anns: list[dict[str, Any]]) -> dict[str, Any] | None:
        path = self.image_root / str(image.get("file_name", ""))
        if not path.is_file():
            self._bad(f"image id {image.get('id')}: file {path} does not exist", "missing image file", path=path)
            return None
        if self.validate != "none":
            try:
                opened = open_image(path, max_pixels=self.max_pixels, decode=self.validate == "full")
            except DataError as exc:
                self._bad(f"image id {image.get('id')}: {exc.reason}", "unreadable image", path=path)
                return None
            width, height = opened.size
        else:
            width, height = int(image.get("width", 0)), int(image.get("height", 0))
        if image.get("width") and image.get("height") and (width, height) != (image["width"], image["height"]):
            self._bad(f"image id {image.get('id')}: the JSON says {image['width']}x{image['height']} but the file "
                      f"is {width}x{height}", "image size mismatch", path=path)
            return None
        boxes, labels = [], []
        for ann in anns:
            if ann.get("iscrowd", 0):
                self.skip("crowd annotation (not used for training)", f"{path} annotation {ann.get('id')}")
                continue
            category = ann.get("category_id")
            if category not in self.category_names:
                self._bad(f"annotation id {ann.get('id')} (image {path.name}): unknown category id {category!r}; "
                          f"known ids {sorted(self.category_names)}", "unknown category id", path=path)
                continue
            box = self._box(ann, width, height, path)
            if box is not None:
                boxes.append(box)
                labels.append(self.category_names[category])
        return {"path": path, "image_id": int(image["id"]), "boxes": boxes, "labels": labels}

    def _box(self, ann: dict[str, Any], width: int, height: int, path: Path) -> list[float] | None:
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            self._bad(f"annotation id {ann.get('id')}: bbox must be [x, y, w, h], got {ann.get('bbox')!r}",
                      "malformed box", path=path)
            return None
        if w <= 0 or h <= 0:
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): box {ann['bbox']} has zero or negative "
                      "size", "box of zero or negative size", path=path)
            return None
        x0, y0, x1, y1 = x, y, x + w, y + h
        t = BOX_TOLERANCE
        if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): box {ann['bbox']} lies outside the "
                      f"{width}x{height} image", "box outside the image", path=path)
            return None
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))
        if x1 - x0 < 1 or y1 - y0 < 1:
            self._bad(f"annotation id {ann.get('id')} (image {path.name}): box {ann['bbox']} is under one pixel "
                      "inside the image", "box of zero or negative size", path=path)
            return None
        return [x0, y0, x1, y1]

    def __len__(self) -> int:
        return len(self.records)

    def _example(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        return {"image": open_image(record["path"], max_pixels=self.max_pixels),
                "boxes": [list(b) for b in record["boxes"]], "labels": list(record["labels"]),
                "image_id": record["image_id"], "_origin": str(record["path"])}
