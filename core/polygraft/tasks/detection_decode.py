"""Detections from an exported detection graph's dense outputs, in NumPy: what torchvision's FCOS does after its
head, so an ONNX runtime needs no torch to read boxes.

The exported graph returns, per image, one decoded box per anchor (``boxes``, ``(B, anchors, 4)`` as
``[x0, y0, x1, y1]`` in network-input pixels) and per-class scores (``scores``, ``(B, anchors, classes)``: FCOS's
``sqrt(sigmoid(class logit) * sigmoid(centerness))``). :func:`decode_detections` then keeps, level by level, the
scores above ``score_thresh`` (at most ``topk_candidates`` per level, best first), clips the boxes to the image,
runs non-maximum suppression per class (IoU above ``nms_thresh`` is suppressed) and keeps the
``detections_per_image`` best: torchvision's ``FCOS.postprocess_detections`` step by step (tested against it).

Example:
    >>> import numpy as np
    >>> boxes = np.array([[[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]]], np.float32)
    >>> scores = np.array([[[0.9], [0.8], [0.7]]], np.float32)
    >>> found = decode_detections(boxes, scores, level_sizes=[3], image_size=(32, 32))
    >>> found[0]["boxes"].tolist(), found[0]["labels"].tolist()
    ([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]], [0, 0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one ``[x0, y0, x1, y1]`` box with each of ``others`` ``(N, 4)`` (float32, as torchvision's NMS)."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area + areas - inter)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first (torchvision.ops.nms)."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        with np.errstate(invalid="ignore", divide="ignore"):  # zero-area boxes: IoU 0/0 is NaN, never suppressed
            order = rest[~(box_iou(boxes[best], boxes[rest]) > threshold)]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """NMS within each class; the kept indices sorted by decreasing score (torchvision.ops.batched_nms)."""
    kept = [np.flatnonzero(labels == label)[nms(boxes[labels == label], scores[labels == label], threshold)]
            for label in np.unique(labels)]
    if not kept:
        return np.zeros(0, dtype=np.int64)
    found = np.concatenate(kept)
    return found[np.argsort(-scores[found], kind="stable")]


def decode_detections(boxes: Any, scores: Any, *, level_sizes: Sequence[int], image_size: Sequence[int],
                      score_thresh: float = 0.05, nms_thresh: float = 0.6, topk_candidates: int = 1000,
                      detections_per_image: int = 100) -> list[dict[str, np.ndarray]]:
    """Per image ``{"boxes" (K, 4), "scores" (K,), "labels" (K,) class ids}`` in network-input pixels.

    Args:
        boxes, scores: the graph's ``boxes`` ``(B, anchors, 4)`` and ``scores`` ``(B, anchors, classes)``.
        level_sizes: anchors per pyramid level, in order (they sum to ``anchors``).
        image_size: ``(height, width)`` of the network input; boxes are clipped to it.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    height, width = (float(v) for v in image_size)
    classes = scores.shape[-1]
    results = []
    for image in range(boxes.shape[0]):
        kept_boxes, kept_scores, kept_labels = [], [], []
        start = 0
        for size in level_sizes:
            level = scores[image, start:start + size].reshape(-1)
            candidates = np.flatnonzero(level > score_thresh)
            order = np.argsort(-level[candidates], kind="stable")[:min(topk_candidates, candidates.size)]
            chosen = candidates[order]
            picked = boxes[image, start + chosen // classes].copy()
            picked[:, 0::2] = np.clip(picked[:, 0::2], 0.0, width)
            picked[:, 1::2] = np.clip(picked[:, 1::2], 0.0, height)
            kept_boxes.append(picked)
            kept_scores.append(level[chosen])
            kept_labels.append(chosen % classes)
            start += size
        all_boxes = np.concatenate(kept_boxes) if kept_boxes else np.zeros((0, 4), np.float32)
        all_scores = np.concatenate(kept_scores) if kept_scores else np.zeros(0, np.float32)
        all_labels = np.concatenate(kept_labels) if kept_labels else np.zeros(0, np.int64)
        keep = batched_nms(all_boxes, all_scores, all_labels, nms_thresh)[:detections_per_image]
        results.append({"boxes": all_boxes[keep], "scores": all_scores[keep], "labels": all_labels[keep]})
    return results
