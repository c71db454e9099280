"""Semantic segmentation from multi-scale feature maps: an FPN decoder (or torchvision's DeepLabV3 head), pixel
cross-entropy with an ignore index, mIoU and pixel accuracy from a confusion matrix.

Modality-free: the head reads only ``Features.maps`` with the backbone's ``map_channels`` / ``map_strides``. The
data pipeline asks the backbone's preprocessor for its no-crop variant (``for_dense_prediction()``), resizes each
mask to the model's input with nearest-neighbour sampling and, at training time, flips image and mask together.
Evaluation scores the prediction upsampled to each mask's own resolution, so resizing never changes the truth.

Raw examples carry ``mask``: an ``(H, W)`` array (or a palette / greyscale PIL image) of class indices, the size of
the image; ``ignore_index`` (255 by default, as in PASCAL VOC) marks unlabelled pixels. A mask whose size differs
from its image, or a value that is neither a class nor the ignore index, is a :class:`~polygraft.errors.DataError`
naming the example's file. Predictions are ``{"size", "pixel_fractions", "masks"}``: the share of each class and
each class's pixels as COCO run-length encoding at the input's resolution (``pycocotools.mask.decode`` reads it).

Example:
    >>> import numpy as np, polygraft
    >>> from PIL import Image
    >>> task = polygraft.create_task("segmentation", backbone="timm", label_names=["background", "square"],
    ...     backbone_options={"model_name": "test_resnet", "features": "maps", "image_size": 64})
    >>> mask = np.zeros((64, 64), dtype=np.uint8); mask[8:24, 8:24] = 1
    >>> batch = task.collate([task.prepare_example({"image": Image.new("RGB", (64, 64)), "mask": mask})])
    >>> float(task(batch).loss) > 0
    True
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from polygraft.errors import ConfigError, DataError, IncompatibleComponentsError
from polygraft.features import Batch, Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.head import Head
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import Task
from polygraft.interfaces.training_module import StepOutput
from polygraft.tasks.segmentation_metrics import (
    decode_masks,
    draw_mask_overlay,
    encode_masks,
    segmentation_scores,
)

if TYPE_CHECKING:
    from polygraft.run import RunDirectory

DECODERS = ("fpn", "deeplabv3")


class SegmentationHead(Head):
    """``fpn``: torchvision's FeaturePyramidNetwork over the last ``levels`` maps, each level through a 3x3 conv,
    upsampled to the finest and summed (the semantic FPN of Panoptic FPN), then a 1x1 classifier. ``deeplabv3``:
    torchvision's DeepLabHead (ASPP) on the coarsest map. Logits are upsampled bilinearly to the input size."""

    def __init__(self, map_channels: Sequence[int], num_classes: int, *, decoder: str = "fpn",
                 channels: int = 64, levels: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        try:
            from torchvision.models.segmentation.deeplabv3 import DeepLabHead
            from torchvision.ops import FeaturePyramidNetwork
        except ImportError as exc:  # pragma: no cover - make set-up installs the extra
            raise IncompatibleComponentsError("the segmentation task needs torchvision and pycocotools: "
                                              "pip install 'polygraft[segmentation]'") from exc
        if not map_channels:
            raise IncompatibleComponentsError("the segmentation head needs a backbone that yields feature maps "
                                              "(map_channels), e.g. timm with features='maps'")
        if decoder not in DECODERS:
            raise ConfigError(f"segmentation: decoder must be one of {DECODERS}, got {decoder!r}")
        if channels < 1 or levels < 1:
            raise ConfigError(f"segmentation: channels and levels must be ≥ 1, got {channels}, {levels}")
        self.decoder = decoder
        self.level_indices = list(range(len(map_channels)))[-min(levels, len(map_channels)):]
        if decoder == "deeplabv3":
            self.level_indices = self.level_indices[-1:]
            self.deeplab = DeepLabHead(int(map_channels[-1]), num_classes)
            return
        self.fpn = FeaturePyramidNetwork([int(map_channels[i]) for i in self.level_indices], channels)
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                          nn.ReLU(inplace=True)) for _ in self.level_indices)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: Features, size: tuple[int, int]) -> torch.Tensor:  # type: ignore[override]  # needs the output size
        """``(B, classes, H, W)`` logits at ``size`` (the model input's height and width)."""
        if not features.maps:
            raise IncompatibleComponentsError("the backbone produced no feature maps; build it with features='maps'")
        if self.decoder == "deeplabv3":
            logits = self.deeplab(features.maps[self.level_indices[0]])
        else:
            maps = OrderedDict((str(k), features.maps[i]) for k, i in enumerate(self.level_indices))
            pyramid = list(self.fpn(maps).values())
            finest = pyramid[0].shape[-2:]
            fused = sum(F.interpolate(conv(level), size=finest, mode="bilinear", align_corners=False)
                        if level.shape[-2:] != finest else conv(level)
                        for conv, level in zip(self.lateral, pyramid))
            logits = self.classifier(self.dropout(fused))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def mask_array(value: Any, *, origin: str | None) -> np.ndarray:
    """An ``(H, W)`` int64 array of class indices from an array, a tensor or a palette / greyscale PIL image."""
    if hasattr(value, "mode") and hasattr(value, "getpixel"):  # a PIL image
        if value.mode not in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
            raise DataError(f"the mask is a {value.mode} image; masks hold class indices: save it as a palette ('P') "
                            "or greyscale ('L') PNG whose pixel values are class numbers", path=origin)
        value = np.asarray(value)
    array = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim != 2 or array.dtype.kind not in "iub":
        raise DataError(f"a mask must be an (H, W) array of integer class indices, got shape {array.shape} of "
                        f"{array.dtype}", path=origin)
    return array.astype(np.int64)


def check_mask(mask: np.ndarray, *, num_classes: int, ignore_index: int, names: Sequence[str],
               origin: str | None) -> None:
    """DataError naming ``origin`` when a value is neither a class index nor ``ignore_index``."""
    values = np.unique(mask)
    bad = [int(v) for v in values if not (0 <= v < num_classes or v == ignore_index)]
    if bad:
        raise DataError(f"mask value(s) {bad[:8]} are not classes: values 0..{num_classes - 1} are {list(names)}, "
                        f"{ignore_index} marks unlabelled pixels (task_options.ignore_index)", path=origin)


class SegmentationPipeline(DataPipeline):
    """Resize image (no crop) and mask (nearest) to the model size; flip both at training time."""

    def __init__(self, preprocessor: Preprocessor, label_names: Sequence[str], *, ignore_index: int,
                 training: bool, flip_prob: float = 0.5) -> None:
        self.preprocessor = preprocessor.for_dense_prediction()
        self.label_names = list(label_names)
        self.ignore_index = ignore_index
        self.training = training
        self.flip_prob = flip_prob
        self.random_prepare = training and flip_prob > 0

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        origin = example.get("_origin")
        inputs = self.preprocessor(example)
        tensor = next(v for v in inputs.values() if isinstance(v, torch.Tensor) and v.dim() >= 2)
        height, width = int(tensor.shape[-2]), int(tensor.shape[-1])
        raw_w, raw_h = self.preprocessor.extent(example)
        item: dict[str, Any] = {"inputs": inputs, "size": (height, width), "raw_size": (raw_h, raw_w)}
        flip = self.training and random.random() < self.flip_prob
        if flip:
            item["inputs"] = {k: v.flip(-1) if isinstance(v, torch.Tensor) and v.shape[-2:] == (height, width)
                              else v for k, v in inputs.items()}
        if "mask" in example:
            mask = mask_array(example["mask"], origin=origin)
            if mask.shape != (raw_h, raw_w):
                raise DataError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but its image is {raw_w}x{raw_h}; "
                                "a mask must have its image's size", path=origin)
            check_mask(mask, num_classes=len(self.label_names), ignore_index=self.ignore_index,
                       names=self.label_names, origin=origin)
            full = torch.from_numpy(mask)
            resized = full if (raw_h, raw_w) == (height, width) else F.interpolate(
                full[None, None].double(), size=(height, width), mode="nearest")[0, 0].long()
            item["mask"] = resized.flip(-1) if flip else resized
            if not self.training and (raw_h, raw_w) != (height, width):
                item["full_mask"] = full.to(torch.int16 if -32768 <= self.ignore_index < 32768 else torch.int64)
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        batch["sizes"] = torch.tensor([item["size"] for item in items], dtype=torch.long)
        batch["meta"]["raw_sizes"] = [tuple(item["raw_size"]) for item in items]
        if items and "mask" in items[0]:
            batch["masks"] = torch.stack([item["mask"] for item in items])
            batch["meta"]["full_masks"] = [item.get("full_mask") for item in items]
        return batch


class SegmentationTask(Task):
    """Semantic segmentation on any backbone that yields feature maps."""

    label_key = "mask"

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], decoder: str = "fpn", channels: int = 64,
                 levels: int = 4, dropout: float = 0.1, ignore_index: int = 255, flip_prob: float = 0.5,
                 class_weights: Sequence[float] | None = None) -> None:
        if len(label_names) < 2:
            raise DataError(f"segmentation needs at least 2 classes (e.g. background and one object), got "
                            f"{list(label_names)}")
        if 0 <= ignore_index < len(label_names):
            raise ConfigError(f"segmentation: ignore_index {ignore_index} is a class ({label_names[ignore_index]!r}); "
                              "pick a value outside 0..classes-1 (255 as in PASCAL VOC, or -1)")
        if class_weights is not None and len(class_weights) != len(label_names):
            raise ConfigError(f"segmentation: class_weights has {len(class_weights)} values for "
                              f"{len(label_names)} classes")
        head = SegmentationHead(backbone.map_channels, len(label_names), decoder=decoder, channels=channels,
                                levels=levels, dropout=dropout)
        super().__init__(backbone, head, label_names=label_names, decoder=decoder, channels=channels, levels=levels,
                         dropout=dropout, ignore_index=ignore_index, flip_prob=flip_prob,
                         class_weights=list(class_weights) if class_weights is not None else None)
        self.ignore_index = ignore_index
        self.flip_prob = flip_prob
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        self.class_weights: torch.Tensor | None
        self.register_buffer("class_weights", weights, persistent=False)
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.confusion = MulticlassConfusionMatrix(len(label_names), ignore_index=ignore_index, validate_args=False)
        self.last_confusion: torch.Tensor | None = None

    @classmethod
    def labels_from_data(cls, source: Any, *, label_key: str | None = None, **options: Any) -> list[str]:
        """The source's class names (a mask's values are indices into them); a recipe can list ``labels:``."""
        if source.label_names:
            return list(source.label_names)
        raise DataError(f"{source.name or 'the training data'} does not name its classes; list them in the recipe's "
                        "labels: [background, ...] (mask value i is the i-th name)")

    def unknown_labels(self, source: Any) -> list[str]:
        """Classes a split names that training does not know (masks are indices, so names must agree in order)."""
        names = getattr(source, "label_names", None)
        if names is None or list(names) == self.label_names:
            return []
        return [f"{name} (class {i}; training has {self.label_names[i] if i < self.num_classes else 'none'})"
                for i, name in enumerate(names) if i >= self.num_classes or self.label_names[i] != name]

    def data_pipeline(self, *, training: bool) -> SegmentationPipeline:
        return SegmentationPipeline(self.backbone.preprocessor, self.label_names, ignore_index=self.ignore_index,
                                    training=training, flip_prob=self.flip_prob)

    def logits(self, batch: Batch) -> torch.Tensor:
        size = (int(batch["sizes"][:, 0].max()), int(batch["sizes"][:, 1].max()))
        return self.head(self.backbone(batch["inputs"]), size)

    def forward(self, batch: Batch) -> StepOutput:
        if "masks" not in batch:
            raise DataError("a segmentation batch needs masks to compute a loss; use predict() instead")
        logits = self.logits(batch)
        masks = batch["masks"]
        if bool((masks != self.ignore_index).any()):
            loss = F.cross_entropy(logits.float(), masks, weight=self.class_weights, ignore_index=self.ignore_index)
        else:  # every pixel unlabelled: nothing to learn from this batch (a mean over no pixels would be NaN)
            loss = logits.float().sum() * 0.0
        return StepOutput(loss=loss, outputs=logits)

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        logits = output.outputs.detach()
        full_masks = batch["meta"].get("full_masks") or [None] * len(logits)
        for row, full in zip(logits, full_masks):
            if full is None:
                continue
            predicted = F.interpolate(row[None].float(), size=tuple(full.shape), mode="bilinear",
                                      align_corners=False).argmax(1)
            self.confusion.update(predicted, full[None].to(predicted.device).long())
        resized = [i for i, full in enumerate(full_masks) if full is None]
        if resized:
            self.confusion.update(logits[resized].float().argmax(1), batch["masks"][resized])

    def compute_metrics(self) -> dict[str, float]:
        self.last_confusion = self.confusion.compute()
        return segmentation_scores(self.last_confusion, self.label_names)

    def reset_metrics(self) -> None:
        self.confusion.reset()

    @torch.no_grad()
    def predict_masks(self, batch: Batch) -> list[np.ndarray]:
        """``(H, W)`` class-index masks at each input's own resolution."""
        logits = self.logits(batch)
        masks = []
        for row, (height, width) in zip(logits, batch["meta"]["raw_sizes"]):
            upsampled = F.interpolate(row[None].float(), size=(height, width), mode="bilinear", align_corners=False)
            masks.append(upsampled.argmax(1)[0].cpu().numpy())
        return masks

    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        results = []
        for mask in self.predict_masks(batch):
            counts = np.bincount(mask.ravel(), minlength=self.num_classes)
            results.append({
                "size": [int(mask.shape[0]), int(mask.shape[1])],
                "pixel_fractions": {name: round(float(c) / mask.size, 5)
                                    for name, c in zip(self.label_names, counts) if c},
                "masks": encode_masks(mask, self.label_names),
            })
        return results

    def draw_predictions(self, example: Mapping[str, Any], prediction: Mapping[str, Any], path: str) -> str:
        """``polygraft predict RUN image.png --draw out.png``: the image with the predicted classes tinted."""
        image = example.get(self.backbone.preprocessor.input_key)
        if image is None or not hasattr(image, "convert"):
            raise DataError("--draw needs an image example (a PIL image under 'image')")
        return draw_mask_overlay(image, decode_masks(prediction["masks"], self.label_names), self.label_names, path)

    def save_artifacts(self, run: RunDirectory) -> list[Path]:
        """The pixel confusion matrix of the last evaluation in percent of each true class's pixels."""
        if self.last_confusion is None:
            return []
        from polygraft.plots import plot_confusion_matrix

        matrix = self.last_confusion.double()
        normalised = 100 * matrix / matrix.sum(dim=1, keepdim=True).clamp_min(1)
        return [plot_confusion_matrix(normalised, self.label_names, run.plot("confusion"))]
