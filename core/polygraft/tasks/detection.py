"""Object detection from multi-scale feature maps: torchvision's FPN + FCOS head, COCO mAP metrics.

Modality-free: the head reads only ``Features.maps`` with the backbone's ``map_channels`` / ``map_strides``,
so any backbone that yields maps (a timm CNN, a spectrogram CNN...) can detect boxes. The data pipeline asks
the backbone's preprocessor for a no-crop variant (``for_dense_prediction()``), so boxes scale linearly with
the input, and flips inputs and boxes together at training time.

Raw examples carry ``boxes`` (``[x0, y0, x1, y1]`` in input pixels) and ``labels`` (names or ids); predictions
are ``{"boxes", "labels", "scores"}`` in the original input's coordinates. Metrics: COCO mAP@[.5:.95]
(``map``), mAP@.5 (``map_50``), mAP@.75 and mAR@100, through torchmetrics with the pycocotools backend,
updated batch by batch.

Example:
    >>> import polygraft
    >>> from PIL import Image
    >>> task = polygraft.create_task("detection", backbone="timm", label_names=["square"],
    ...     backbone_options={"model_name": "test_resnet", "features": "maps", "image_size": 64})
    >>> batch = task.collate([task.prepare_example({"image": Image.new("RGB", (64, 64)),
    ...                                             "boxes": [[8, 8, 24, 24]], "labels": ["square"]})])
    >>> float(task(batch).loss) > 0
    True
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from polygraft.errors import ConfigError, DataError, IncompatibleComponentsError
from polygraft.features import Batch, Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.head import Head
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import LabelEncoder, Task
from polygraft.interfaces.training_module import StepOutput


class FCOSDetectionHead(Head):
    """FPN over the backbone's last ``levels`` maps (+ ``extra_levels`` P6/P7), then torchvision's FCOS."""


    def __init__(self, map_channels: Sequence[int], map_strides: Sequence[int], num_classes: int, *,
                 fpn_channels: int = 64, levels: int = 3, extra_levels: int = 2, head_convs: int = 2,
                 score_thresh: float = 0.05, nms_thresh: float = 0.6, detections_per_image: int = 100,
                 center_sampling_radius: float = 1.5) -> None:
        super().__init__()
        try:
            from torchvision.models.detection.anchor_utils import AnchorGenerator
            from torchvision.models.detection.fcos import FCOS, FCOSHead
            from torchvision.ops import FeaturePyramidNetwork
            from torchvision.ops.feature_pyramid_network import LastLevelP6P7
        except ImportError as exc:  # pragma: no cover - make set-up installs the extra
            raise IncompatibleComponentsError(
                "the detection task needs torchvision and pycocotools: pip install 'polygraft[detection]'") from exc
        if not map_channels or len(map_channels) != len(map_strides):
            raise IncompatibleComponentsError("the detection head needs a backbone that yields feature maps "
                                              "(map_channels and map_strides), e.g. timm with features='maps'")
        if extra_levels not in (0, 2):
            raise IncompatibleComponentsError(f"extra_levels must be 0 or 2 (P6, P7), got {extra_levels}")
        if levels < 1 or head_convs < 0:
            raise ConfigError(f"detection: levels must be ≥ 1 and head_convs ≥ 0, got levels={levels}, "
                              f"head_convs={head_convs}")
        # torchvision's FCOS head follows each of its head_convs convolutions with GroupNorm(32 groups): the
        # channels must split into 32 groups, and F.group_norm refuses a group holding a single value, which is
        # what 32 channels give on a single image's 1x1 map (P7 of any input up to 4x the coarsest stride)
        if head_convs > 0 and (fpn_channels % 32 or fpn_channels < 64):
            raise ConfigError(f"detection: fpn_channels must be a multiple of 32 and at least 64 (64, 96, 128, ...), "
                              f"got {fpn_channels}: the FCOS head normalises with GroupNorm in 32 groups, and with "
                              "32 channels a single image's 1x1 top pyramid map leaves one value per group, which "
                              "GroupNorm cannot normalise (head_convs: 0 has no GroupNorm and takes any "
                              "fpn_channels ≥ 1)")
        if fpn_channels < 1:
            raise ConfigError(f"detection: fpn_channels must be ≥ 1, got {fpn_channels}")
        levels = min(levels, len(map_channels))
        self.level_indices = list(range(len(map_channels)))[-levels:]
        strides = [int(map_strides[i]) for i in self.level_indices]
        strides += [strides[-1] * 2 ** (k + 1) for k in range(extra_levels)]
        fpn = FeaturePyramidNetwork(
            [int(map_channels[i]) for i in self.level_indices], fpn_channels,
            extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels) if extra_levels else None,
        )
        fpn.out_channels = fpn_channels  # what torchvision's detectors expect of their "backbone"
        anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))  # FCOS: size = stride
        head = FCOSHead(fpn_channels, 1, num_classes, num_convs=head_convs)
        self.detector = FCOS(fpn, num_classes, anchor_generator=anchors, head=head,
                             center_sampling_radius=center_sampling_radius, score_thresh=score_thresh,
                             nms_thresh=nms_thresh, detections_per_img=detections_per_image)

    def dense_outputs(self, features: Features, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """What an exported graph returns before post-processing: one decoded box per anchor ``(B, anchors, 4)``
        in input pixels, per-class scores ``(B, anchors, classes)`` (``sqrt(sigmoid(logit) * sigmoid(centerness))``,
        FCOS's), and the anchors per pyramid level (see :mod:`polygraft.tasks.detection_decode`)."""
        from torchvision.models.detection.image_list import ImageList

        if not features.maps:
            raise IncompatibleComponentsError("the backbone produced no feature maps; build it with features='maps'")
        maps = OrderedDict((str(k), features.maps[i]) for k, i in enumerate(self.level_indices))
        pyramid = list(self.detector.backbone(maps).values())
        head = self.detector.head(pyramid)
        canvas = pyramid[0].new_empty((1, 0, height, width))
        anchors = self.detector.anchor_generator(ImageList(canvas, [(height, width)]), pyramid)[0]
        boxes = self.detector.box_coder.decode(head["bbox_regression"], anchors)
        scores = torch.sqrt(torch.sigmoid(head["cls_logits"]) * torch.sigmoid(head["bbox_ctrness"]))
        return boxes, scores, [int(x.size(2) * x.size(3)) for x in pyramid]

    def forward(self, features: Features, sizes: torch.Tensor,  # type: ignore[override]  # the head needs sizes
                targets: list[dict[str, torch.Tensor]] | None = None,
                *, decode: bool = False) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]] | None]:
        """Losses (when ``targets`` are given) and decoded detections (when ``decode``)."""
        from torchvision.models.detection.image_list import ImageList

        if not features.maps:
            raise IncompatibleComponentsError("the backbone produced no feature maps; build it with features='maps'")
        maps = OrderedDict((str(k), features.maps[i]) for k, i in enumerate(self.level_indices))
        pyramid = list(self.detector.backbone(maps).values())
        head_outputs = self.detector.head(pyramid)
        height, width = int(sizes[:, 0].max()), int(sizes[:, 1].max())
        image_sizes = [(int(h), int(w)) for h, w in sizes.tolist()]
        canvas = pyramid[0].new_empty((len(image_sizes), 0, height, width))
        anchors = self.detector.anchor_generator(ImageList(canvas, image_sizes), pyramid)
        per_level = [x.size(2) * x.size(3) for x in pyramid]
        losses: dict[str, torch.Tensor] = {}
        if targets is not None:
            losses = self.detector.compute_loss(targets, head_outputs, anchors, per_level)
        detections = None
        if decode:
            split_outputs = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
            split_anchors = [list(a.split(per_level)) for a in anchors]
            detections = self.detector.postprocess_detections(split_outputs, split_anchors, image_sizes)
        return losses, detections


    def dense(self, features: Features, sizes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every location's class scores ``(B, N, classes)`` (FCOS's ``sqrt(sigmoid(cls) * sigmoid(centerness))``,
        before thresholds and NMS) and decoded boxes ``(B, N, 4)`` in input pixels; differentiable (explanations
        follow the location that predicted a box)."""
        from torchvision.models.detection.image_list import ImageList

        maps = OrderedDict((str(k), features.maps[i]) for k, i in enumerate(self.level_indices))
        pyramid = list(self.detector.backbone(maps).values())
        outputs = self.detector.head(pyramid)
        image_sizes = [(int(h), int(w)) for h, w in sizes.tolist()]
        canvas = pyramid[0].new_empty((len(image_sizes), 0, max(h for h, _ in image_sizes),
                                       max(w for _, w in image_sizes)))
        anchors = self.detector.anchor_generator(ImageList(canvas, image_sizes), pyramid)
        scores = torch.sqrt(torch.sigmoid(outputs["cls_logits"]) * torch.sigmoid(outputs["bbox_ctrness"]))
        boxes = torch.stack([self.detector.box_coder.decode(codes, anchor)
                             for codes, anchor in zip(outputs["bbox_regression"], anchors)])
        return scores, boxes


class DetectionPipeline(DataPipeline):
    """Preprocess without cropping, scale boxes to the input size, flip both at training time."""

    def __init__(self, preprocessor: Preprocessor, label_names: Sequence[str], *, training: bool,
                 flip_prob: float = 0.5) -> None:
        self.preprocessor = preprocessor.for_dense_prediction()
        self.encode = LabelEncoder(label_names)
        self.training = training
        self.flip_prob = flip_prob
        self.random_prepare = training and flip_prob > 0  # the horizontal flip is drawn in prepare

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        inputs = self.preprocessor(example)
        tensor = next(v for v in inputs.values() if isinstance(v, torch.Tensor) and v.dim() >= 2)
        height, width = int(tensor.shape[-2]), int(tensor.shape[-1])
        item: dict[str, Any] = {"inputs": inputs, "size": (height, width), "image_id": example.get("image_id")}
        raw_w, raw_h = self.preprocessor.extent(example)
        sx, sy = width / raw_w, height / raw_h
        item["scale"] = (sx, sy)
        if "boxes" in example:
            boxes = torch.as_tensor(example["boxes"], dtype=torch.float32).reshape(-1, 4)
            labels = example.get("labels", [])
            if len(labels) != len(boxes):
                raise DataError(f"{len(boxes)} boxes but {len(labels)} labels", path=example.get("_origin"))
            if len(boxes) and bool(((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any()):
                raise DataError("a box has zero or negative size (boxes are [x0, y0, x1, y1])",
                                path=example.get("_origin"))
            boxes = boxes * torch.tensor([sx, sy, sx, sy])
            item["boxes"] = boxes
            item["labels"] = torch.tensor([self.encode(label, example) for label in labels], dtype=torch.long)
        if self.training and random.random() < self.flip_prob:
            item["inputs"] = {k: v.flip(-1) if isinstance(v, torch.Tensor) and v.shape[-2:] == (height, width)
                              else v for k, v in inputs.items()}
            if "boxes" in item:
                boxes = item["boxes"].clone()
                boxes[:, [0, 2]] = width - item["boxes"][:, [2, 0]]
                item["boxes"] = boxes
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        batch["sizes"] = torch.tensor([item["size"] for item in items], dtype=torch.long)
        batch["scales"] = torch.tensor([item["scale"] for item in items], dtype=torch.float32)
        batch["meta"]["image_ids"] = [item["image_id"] for item in items]
        if items and "boxes" in items[0]:
            batch["targets"] = [{"boxes": item["boxes"], "labels": item["labels"]} for item in items]
        return batch


class DetectionTask(Task):
    """FCOS detection on any backbone that yields feature maps."""

    label_key = "labels"

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], flip_prob: float = 0.5,
                 fpn_channels: int = 64, levels: int = 3, extra_levels: int = 2, head_convs: int = 2,
                 score_thresh: float = 0.05, nms_thresh: float = 0.6, detections_per_image: int = 100,
                 center_sampling_radius: float = 1.5) -> None:
        head_options: dict[str, Any] = {"fpn_channels": fpn_channels, "levels": levels, "extra_levels": extra_levels,
                        "head_convs": head_convs, "score_thresh": score_thresh, "nms_thresh": nms_thresh,
                        "detections_per_image": detections_per_image, "center_sampling_radius": center_sampling_radius}
        head = FCOSDetectionHead(backbone.map_channels, backbone.map_strides, len(label_names), **head_options)
        super().__init__(backbone, head, label_names=label_names)
        self.flip_prob = flip_prob
        self._levels: dict[tuple[int, int], list[int]] = {}
        from pycocotools.cocoeval import Params
        from torchmetrics.detection import MeanAveragePrecision

        # COCO's own float64 thresholds: torchmetrics' float32 linspace makes 0.07 into 0.0700000003, which moves
        # map and map_50 away from COCOeval on the same boxes
        coco = Params(iouType="bbox")
        self.metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools",
                                           iou_thresholds=coco.iouThrs.tolist(), rec_thresholds=coco.recThrs.tolist())

    def data_pipeline(self, *, training: bool) -> DetectionPipeline:
        return DetectionPipeline(self.backbone.preprocessor, self.label_names, training=training,
                                 flip_prob=self.flip_prob)

    def forward(self, batch: Batch) -> StepOutput:
        if "targets" not in batch:
            raise DataError("a detection batch needs boxes and labels to compute a loss; use predict() instead")
        features = self.backbone(batch["inputs"])
        losses, detections = self.head(features, batch["sizes"], batch["targets"], decode=not self.training)
        loss = sum(losses.values())
        return StepOutput(loss=loss, outputs={"detections": detections,
                                              "losses": {k: v.detach() for k, v in losses.items()}})

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        detections = output.outputs["detections"]
        if detections is None:
            with torch.no_grad():
                _, detections = self.head(self.backbone(batch["inputs"]), batch["sizes"], decode=True)
        preds = [{k: d[k].detach().float() if k != "labels" else d[k] for k in ("boxes", "scores", "labels")}
                 for d in detections]
        self.metric.update(preds, batch["targets"])

    def compute_metrics(self) -> dict[str, float]:
        result = self.metric.compute()
        return {key: float(result[key]) for key in ("map", "map_50", "map_75", "mar_100") if key in result}

    def reset_metrics(self) -> None:
        self.metric.reset()

    def export_outputs(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``{"boxes": (B, anchors, 4), "scores": (B, anchors, classes)}`` before thresholds and NMS, for a batch of
        one fixed input size (the dense preprocessing's); :meth:`predictions_from_outputs` (NumPy, see
        :mod:`polygraft.tasks.detection_decode`) turns them into what :meth:`predict` returns."""
        height, width = _input_size(inputs)
        boxes, scores, levels = self.head.dense_outputs(self.backbone(inputs), height, width)
        self._levels[(height, width)] = levels
        return {"boxes": boxes, "scores": scores}

    def decoding(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The post-processing settings of an exported graph for batches like ``inputs`` (written beside it):
        anchors per pyramid level, input size, thresholds, candidates and detections per image."""
        height, width = _input_size(inputs)
        if (height, width) not in self._levels:
            with torch.no_grad():  # once per input size: the pyramid's sizes
                self.export_outputs({k: v[:1] if isinstance(v, torch.Tensor) else v for k, v in inputs.items()})
        detector: Any = self.head.detector
        return {"level_sizes": self._levels[(height, width)], "image_size": [height, width],
                "score_thresh": float(detector.score_thresh), "nms_thresh": float(detector.nms_thresh),
                "topk_candidates": int(detector.topk_candidates),
                "detections_per_image": int(detector.detections_per_img)}

    def predictions_from_outputs(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        from polygraft.tasks.detection_decode import decode_detections

        found = decode_detections(torch.as_tensor(outputs["boxes"]).float().cpu().numpy(),
                                  torch.as_tensor(outputs["scores"]).float().cpu().numpy(),
                                  **self.decoding(batch["inputs"]))
        results = []
        for detection, scale in zip(found, batch["scales"]):
            sx, sy = float(scale[0]), float(scale[1])
            results.append({
                "boxes": [[round(float(v) / s, 2) for v, s in zip(box, (sx, sy, sx, sy))] for box in detection["boxes"]],
                "labels": [self.label_names[int(i)] for i in detection["labels"]],
                "scores": [round(float(s), 4) for s in detection["scores"]],
            })
        return results

    def draw_predictions(self, example: Mapping[str, Any], prediction: Mapping[str, Any], path: str) -> str:
        """``polygraft predict RUN image.jpg --draw out.png``: the image with its detections drawn on."""
        image = example.get(self.backbone.preprocessor.input_key)
        if image is None or not hasattr(image, "convert"):
            raise DataError("--draw needs an image example (a PIL image under 'image')")
        return draw_detections(image, prediction, path)

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        _, detections = self.head(self.backbone(batch["inputs"]), batch["sizes"], decode=True)
        results = []
        for detection, scale in zip(detections, batch["scales"]):
            sx, sy = float(scale[0]), float(scale[1])
            boxes = detection["boxes"].float().cpu() / torch.tensor([sx, sy, sx, sy])
            results.append({
                "boxes": [[round(float(v), 2) for v in box] for box in boxes],
                "labels": [self.label_names[int(i)] for i in detection["labels"]],
                "scores": [round(float(s), 4) for s in detection["scores"]],
            })
        return results


def _input_size(inputs: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of a batch's image tensor."""
    tensor = next(v for v in inputs.values() if isinstance(v, torch.Tensor) and v.dim() == 4)
    return int(tensor.shape[-2]), int(tensor.shape[-1])


def draw_detections(image: Any, prediction: Mapping[str, Any], path: str, *, min_score: float = 0.3) -> str:
    """Render boxes, labels and scores (≥ ``min_score``) onto a copy of a PIL image and save it to ``path``."""
    from PIL import ImageDraw

    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    palette = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]
    names = sorted(set(prediction["labels"]))
    for box, label, score in zip(prediction["boxes"], prediction["labels"], prediction["scores"]):
        if score < min_score:
            continue
        colour = palette[names.index(label) % len(palette)]
        draw.rectangle(box, outline=colour, width=2)
        draw.text((box[0] + 2, box[1] + 1), f"{label} {score:.2f}", fill=colour)
    canvas.save(path)
    return path
