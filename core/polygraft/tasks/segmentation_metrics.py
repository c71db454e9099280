"""Semantic-segmentation metrics from a pixel confusion matrix, and the mask overlay ``predict --draw`` writes.

The confusion matrix counts every labelled pixel (pixels marked with the ignore index are left out) with the true
class on rows and the predicted class on columns, accumulated over the whole split (as the PASCAL VOC and
Cityscapes evaluations do, not averaged per image). From it:

- ``pixel_accuracy``: correct pixels / labelled pixels;
- ``iou_<class>``: true positives / (true positives + false positives + false negatives) of that class;
- ``miou``: the mean IoU over the classes that occur in the truth or the predictions (a class absent from both
  has no IoU and is left out of the mean, not counted as 0 or 1);
- ``mean_class_accuracy``: the mean per-class recall over the classes present in the truth.

Example:
    >>> import torch
    >>> from polygraft.tasks.segmentation_metrics import segmentation_scores
    >>> confusion = torch.tensor([[3, 1], [0, 4]])
    >>> scores = segmentation_scores(confusion, ["background", "cat"])
    >>> round(scores["pixel_accuracy"], 3), round(scores["miou"], 3)
    (0.875, 0.775)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def segmentation_scores(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, float]:
    """``pixel_accuracy``, ``miou``, ``mean_class_accuracy`` and ``iou_<class>`` from a ``(C, C)`` confusion."""
    matrix = confusion.detach().double().cpu()
    true_positives = matrix.diag()
    truth, predicted = matrix.sum(dim=1), matrix.sum(dim=0)
    union = truth + predicted - true_positives
    total = float(matrix.sum())
    scores: dict[str, float] = {"pixel_accuracy": float(true_positives.sum()) / total if total else float("nan")}
    present = union > 0
    iou = torch.where(present, true_positives / union.clamp_min(1), torch.full_like(union, float("nan")))
    scores["miou"] = float(iou[present].mean()) if bool(present.any()) else float("nan")
    labelled = truth > 0
    recall = true_positives[labelled] / truth[labelled]
    scores["mean_class_accuracy"] = float(recall.mean()) if bool(labelled.any()) else float("nan")
    for name, value, seen in zip(class_names, iou.tolist(), present.tolist()):
        if seen:
            scores[f"iou_{name}"] = float(value)
    return scores


def colour_table(count: int) -> np.ndarray:
    """``(count, 3)`` uint8 colours: matplotlib's tab20, repeated when there are more classes."""
    from matplotlib import colormaps

    table = (np.asarray(colormaps["tab20"].colors) * 255).round().astype(np.uint8)  # type: ignore[attr-defined]
    return np.resize(table, (max(count, 1), 3))


def draw_mask_overlay(image: Any, mask: np.ndarray, class_names: Sequence[str], path: str, *,
                      alpha: float = 0.55, background: int = 0) -> str:
    """Blend each class's colour over a copy of a PIL ``image`` (class ``background`` left as it is), add a legend
    of the classes present, and save to ``path``. ``mask`` is ``(H, W)`` class indices at the image's size."""
    from PIL import Image, ImageDraw

    canvas = np.asarray(image.convert("RGB"), dtype=np.float64)
    if mask.shape != canvas.shape[:2]:
        raise ValueError(f"mask of shape {mask.shape} does not match the {canvas.shape[1]}x{canvas.shape[0]} image")
    colours = colour_table(len(class_names)).astype(np.float64)
    tinted = mask != background
    canvas[tinted] = (1 - alpha) * canvas[tinted] + alpha * colours[mask[tinted]]
    picture = Image.fromarray(canvas.round().astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    present = [int(c) for c in np.unique(mask) if int(c) != background]
    for row, index in enumerate(present):
        top = 4 + 14 * row
        draw.rectangle([4, top, 14, top + 10], fill=tuple(int(v) for v in colours[index]), outline="white")
        draw.text((18, top - 1), class_names[index], fill="white")
    picture.save(path)
    return path


def encode_masks(mask: np.ndarray, class_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each class present in ``mask`` as COCO run-length encoding (``{"size": [h, w], "counts": str}``, the format
    ``pycocotools.mask.decode`` reads)."""
    from pycocotools import mask as mask_utils

    encoded = {}
    for index in np.unique(mask):
        rle = mask_utils.encode(np.asfortranarray((mask == index).astype(np.uint8)))
        encoded[class_names[int(index)]] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}
    return encoded


def decode_masks(encoded: Mapping[str, Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
    """The ``(H, W)`` class-index mask back from :func:`encode_masks`' output."""
    from pycocotools import mask as mask_utils

    mask: np.ndarray | None = None
    for name, rle in encoded.items():
        binary = mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"].encode()}).astype(bool)
        if mask is None:
            mask = np.zeros(binary.shape, dtype=np.int64)
        mask[binary] = list(class_names).index(name)
    if mask is None:
        raise ValueError("no class masks to decode")
    return mask
