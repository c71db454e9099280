"""COCO instance annotations (polygons or run-length encoding) as semantic masks, through pycocotools.

Class 0 is ``background``; category *k* (in id order) is class *k + 1*. Each image's annotations are painted
largest first, so a small object lying on a large one stays visible; crowd regions (``iscrowd: 1``) are painted
with the ignore index (not scored, not trained on). Checked when opened, naming the annotation id and file: a
polygon that is not a list of at least three ``x, y`` points, an RLE whose ``size`` differs from its image (the
mask would not fit), a missing segmentation, an unknown category. The file's structure is checked as for the
``coco`` detection reader (:class:`~polygraft_vision.coco.CocoSource`), and ``skip_invalid=true`` skips and counts
bad annotations or images instead of raising.

Example:
    >>> import json, tempfile, pathlib
    >>> from PIL import Image
    >>> from polygraft_vision.coco_masks import CocoSegmentationSource
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (10, 10)).save(root / "a.png")
    >>> _ = (root / "ann.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}],
    ...     "categories": [{"id": 7, "name": "tile"}], "annotations": [{"id": 1, "image_id": 1, "category_id": 7,
    ...     "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]], "bbox": [2, 2, 4, 4], "area": 16, "iscrowd": 0}]}))
    >>> source = CocoSegmentationSource(root / "ann.json")
    >>> source.label_names, int(source[0]["mask"].sum())
    (['background', 'tile'], 16)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from polygraft.errors import DataError
from polygraft_vision.coco import CocoSource, as_id
from polygraft_vision.images import DEFAULT_MAX_PIXELS, open_image


class CocoSegmentationSource(CocoSource):
    """Images and semantic masks from a COCO ``instances``-style JSON with ``segmentation`` fields."""

    def __init__(self, annotations: str | Path, *, images: str | Path | None = None, skip_invalid: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, validate: str | None = None, ignore_index: int = 255,
                 background: str = "background") -> None:
        self.ignore_index = ignore_index
        super().__init__(annotations, images=images, skip_invalid=skip_invalid, max_pixels=max_pixels,
                         validate=validate or "header")
        names = [self.category_names[i] for i in sorted(self.category_names)]
        if background in names:
            raise DataError(f"a category is named {background!r}, the name of class 0 (unlabelled by any "
                            "annotation); pass background=... with another name", path=self.annotations_path)
        self.label_names = [background, *names]
        self.class_of = {category: index + 1 for index, category in enumerate(sorted(self.category_names))}

    def _check_image(self, image: dict[str, Any], image_id: int, anns: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            self._bad(f"image id {image_id} has no 'file_name'", "missing image file")
            return None
        path = self.image_root / image["file_name"]
        if not path.is_file():
            self._bad(f"image id {image_id}: file {path} does not exist", "missing image file", path=path)
            return None
        try:
            width, height = open_image(path, max_pixels=self.max_pixels, decode=self.validate == "full").size
        except DataError as exc:
            self._bad(f"image id {image_id}: {exc.reason}", "unreadable image", path=path)
            return None
        declared = (as_id(image.get("width")), as_id(image.get("height")))
        if all(v is not None for v in declared) and declared != (width, height):
            self._bad(f"image id {image_id}: the JSON says {declared[0]}x{declared[1]} but the file is "
                      f"{width}x{height}", "image size mismatch", path=path)
            return None
        segments = []
        for ann in anns:
            segment = self._segment(ann, width, height, path)
            if segment is not None:
                segments.append(segment)
        return {"path": path, "image_id": image_id, "width": width, "height": height, "segments": segments}

    def _segment(self, ann: dict[str, Any], width: int, height: int, path: Path) -> tuple[int, Any, float] | None:
        """``(category id, pycocotools RLE, area)`` of one annotation, or None (reported) when it is bad."""
        from pycocotools import mask as mask_utils

        where = f"annotation id {ann.get('id')} (image {path.name})"
        category = as_id(ann.get("category_id"))
        if category not in self.category_names:
            self._bad(f"{where}: unknown category id {ann.get('category_id')!r}; known ids "
                      f"{sorted(self.category_names)}", "unknown category id")
            return None
        segmentation = ann.get("segmentation")
        if isinstance(segmentation, list):
            polygons = [p for p in segmentation if isinstance(p, list)]
            if not polygons or len(polygons) != len(segmentation) or any(
                    len(p) < 6 or len(p) % 2 or not all(isinstance(v, int | float) and math.isfinite(v) for v in p)
                    for p in polygons):
                self._bad(f"{where}: a polygon segmentation is a list of [x1, y1, x2, y2, ...] lists of at least "
                          "three points with finite coordinates", "malformed polygon")
                return None
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
            size = segmentation["size"]
            if not isinstance(size, list) or [as_id(v) for v in size] != [height, width]:
                self._bad(f"{where}: the RLE mask is {size!r} (height, width) but its image is {height}x{width} "
                          "(height x width); a mask must have its image's size", "mask size differs from its image")
                return None
            counts = segmentation["counts"]
            try:
                rle = mask_utils.frPyObjects(segmentation, height, width) if isinstance(counts, list) else \
                    {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
                mask_utils.area(rle)
            except (TypeError, ValueError, AttributeError) as exc:
                self._bad(f"{where}: unreadable RLE counts ({exc})", "malformed RLE")
                return None
        else:
            self._bad(f"{where}: no 'segmentation' (polygons or RLE {{size, counts}})", "annotation without a mask")
            return None
        area = float(mask_utils.area(rle))
        return (category if not ann.get("iscrowd", 0) else -1, rle, area)

    def _example(self, index: int) -> dict[str, Any]:
        from pycocotools import mask as mask_utils

        record = self.records[index]
        mask = np.zeros((record["height"], record["width"]), dtype=np.int64)
        for category, rle, _ in sorted(record["segments"], key=lambda s: -s[2]):  # largest first
            value = self.ignore_index if category == -1 else self.class_of[category]
            mask[mask_utils.decode(rle).astype(bool)] = value
        return {"image": open_image(record["path"], max_pixels=self.max_pixels), "mask": mask,
                "image_id": record["image_id"], "_origin": str(record["path"])}


def create_coco_segmentation(*, annotations: str, images: str | None = None, skip_invalid: bool = False,
                             ignore_index: int = 255, background: str = "background", validate: str | None = None,
                             max_pixels: int = DEFAULT_MAX_PIXELS, split: str | None = None) -> CocoSegmentationSource:
    """Dataset ``coco-segmentation``: a COCO instances JSON (polygons / RLE) as semantic masks."""
    source = CocoSegmentationSource(annotations, images=images, skip_invalid=skip_invalid, max_pixels=max_pixels,
                                    validate=validate, ignore_index=ignore_index, background=background)
    source.name = "coco-segmentation"
    return source
