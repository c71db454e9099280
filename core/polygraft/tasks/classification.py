"""Classification of whole examples (sentences, images, clips) from pooled features.

Metrics: accuracy, macro-F1 (and top-5 accuracy when there are more than 5 classes), accumulated batch
by batch with torchmetrics; a confusion matrix is kept for plotting.

Imbalanced classes: ``class_weights: auto`` weighs each class by ``n / (classes × its count)`` in the training
split (scikit-learn's "balanced"), ``class_weights: {label: w}`` by hand; ``loss: focal`` (with ``focal_gamma``) is
the focal loss. On a fusion backbone with ``auxiliary_loss_weight`` each branch also gets a head and a loss.

Example:
    >>> import polygraft
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"],
    ...                              backbone_options={"in_features": 2})
    >>> batch = task.collate([task.prepare_example({"x": [0.0, 1.0], "label": "a"})])
    >>> task.predict(batch)[0]["label"] in {"a", "b"}
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torchmetrics
from torch import nn
from torch.nn import functional as F

from polygraft.errors import ConfigError, DataError
from polygraft.features import Batch, Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.head import Head
from polygraft.interfaces.pipeline import DataPipeline
from polygraft.interfaces.preprocessor import Preprocessor
from polygraft.interfaces.task import LabelEncoder, Task
from polygraft.interfaces.training_module import StepOutput
from polygraft.options import check_fraction
from polygraft.tasks.auxiliary import auxiliary_heads, auxiliary_loss
from polygraft.tasks.losses import balanced_weights, check_loss, focal_loss, weights_from_mapping
from polygraft.tasks.targets import MISSING, target_values

if TYPE_CHECKING:
    from polygraft.interfaces import DataSource
    from polygraft.run import RunDirectory


class ClassificationHead(Head):
    """Dropout + linear layer on the pooled features."""


    def __init__(self, in_features: int, num_classes: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, features: Features) -> torch.Tensor:
        return self.linear(self.dropout(features.pool()))


class ClassificationPipeline(DataPipeline):
    """Backbone preprocessing plus the label id."""

    random_prepare = False  # the inputs are the preprocessor's, the label a look-up

    def __init__(self, preprocessor: Preprocessor, label_names: Sequence[str], label_key: str = "label") -> None:
        self.preprocessor = preprocessor
        self.encode = LabelEncoder(label_names)
        self.label_key = label_key

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"inputs": self.preprocessor(example)}
        if self.label_key in example:
            item["label"] = self.encode(example[self.label_key], example)
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        if items and "label" in items[0]:
            batch["labels"] = torch.tensor([item["label"] for item in items], dtype=torch.long)
        return batch


class ClassificationTask(Task):
    """Cross-entropy classification of pooled features."""

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], dropout: float = 0.1,
                 label_smoothing: float = 0.0, label_key: str = "label",
                 augment: bool | dict[str, Any] = False, class_weights: str | dict[str, float] | None = None,
                 loss: str = "cross-entropy", focal_gamma: float = 2.0) -> None:
        check_fraction(dropout, name="dropout", what="task 'classification'")
        check_fraction(label_smoothing, name="label_smoothing", what="task 'classification'")
        if len(label_names) < 2:
            raise DataError(f"classification needs at least 2 labels, got {list(label_names)}; check the label "
                            "column of the training data")
        check_loss(loss, gamma=focal_gamma, label_smoothing=label_smoothing)
        if isinstance(class_weights, str) and class_weights != "auto":
            raise ConfigError(f"classification: class_weights is 'auto' or a mapping label → weight, got "
                              f"{class_weights!r}")
        head = ClassificationHead(backbone.feature_dim, len(label_names), dropout=dropout)
        super().__init__(backbone, head, label_names=label_names)
        self.label_smoothing = label_smoothing
        self.label_key = label_key
        self.augment = augment
        self.class_weights, self.loss_name, self.focal_gamma = class_weights, loss, focal_gamma
        initial = weights_from_mapping(class_weights, self.label_names) if isinstance(class_weights, dict) else None
        self.register_buffer("class_weight", initial, persistent=False)  # training only: not in saved models
        self.auxiliary = auxiliary_heads(backbone, lambda dim: ClassificationHead(dim, len(label_names),
                                                                                   dropout=dropout))
        n = self.num_classes
        metrics: dict[str, torchmetrics.Metric] = {
            "accuracy": torchmetrics.classification.MulticlassAccuracy(n, average="micro"),
            "macro_f1": torchmetrics.classification.MulticlassF1Score(n, average="macro"),
        }
        if n > 5:
            metrics["top5_accuracy"] = torchmetrics.classification.MulticlassAccuracy(n, top_k=5, average="micro")
        # compute_groups=False: torchmetrics would otherwise merge metrics whose states happen to be equal after
        # the first update (one class in the first batch) and compute top-5 from the wrong counts
        self.metrics = torchmetrics.MetricCollection(metrics, compute_groups=False)  # type: ignore[arg-type]
        self.confusion = torchmetrics.classification.MulticlassConfusionMatrix(n)
        self.last_confusion: torch.Tensor | None = None

    def data_pipeline(self, *, training: bool) -> ClassificationPipeline:
        """``augment: true`` (or options such as ``{auto_augment: rand-m9-mstd0.5}``) turns on the backbone
        preprocessor's training transform (timm's RandAugment, flips... for images) for training batches."""
        preprocessor = self.backbone.preprocessor
        if training and self.augment:
            preprocessor = preprocessor.for_training(**(self.augment if isinstance(self.augment, dict) else {}))
        return ClassificationPipeline(preprocessor, self.label_names, self.label_key)

    def fit_data(self, train_data: DataSource) -> None:
        """The backbone's fitted preprocessing, then (``class_weights: auto``) the class weights of the training
        labels."""
        super().fit_data(train_data)
        if self.class_weights == "auto":
            encode = LabelEncoder(self.label_names)
            ids = [encode(value, {"_origin": origin}) for value, origin in target_values(train_data, self.label_key)
                   if value is not MISSING]
            device = next(self.head.parameters()).device
            self.class_weight = balanced_weights(ids, num_classes=self.num_classes).to(device)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy (label smoothing, class weights) or the focal loss of ``logits`` against ``labels``."""
        weight = self.class_weight
        if self.loss_name == "focal":
            return focal_loss(logits, labels, gamma=self.focal_gamma, weight=weight, reduction=reduction)
        return F.cross_entropy(logits.float(), labels, weight=weight, label_smoothing=self.label_smoothing,
                               reduction=reduction)

    def forward(self, batch: Batch) -> StepOutput:
        features = self.backbone(batch["inputs"])
        logits = self.head(features)
        loss = self.loss(logits, batch["labels"])
        if self.training and "labels" in batch:
            extra = auxiliary_loss(self.auxiliary, features, getattr(self.backbone, "auxiliary_loss_weight", 0.0),
                                   lambda out: self.loss(out, batch["labels"], reduction="none"))
            if extra is not None:
                loss = loss + extra
        return StepOutput(loss=loss, outputs=logits)

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        logits = output.outputs.detach().float()
        self.metrics.update(logits, batch["labels"])
        self.confusion.update(logits, batch["labels"])

    def compute_metrics(self) -> dict[str, float]:
        # every rank computes (torchmetrics syncs across processes); keep the matrix for plotting on rank 0
        self.last_confusion = self.confusion.compute()
        return {name: float(value) for name, value in self.metrics.compute().items()}

    def confusion_matrix(self) -> torch.Tensor:
        """Confusion matrix (true × predicted) of the last ``compute_metrics``."""
        if self.last_confusion is None:
            raise RuntimeError("no validation has run yet: call compute_metrics() first")
        return self.last_confusion

    def reset_metrics(self) -> None:
        self.metrics.reset()
        self.confusion.reset()

    def export_outputs(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``{"logits": (B, classes)}``: what an exported graph returns (softmax them for probabilities)."""
        return {"logits": self.head(self.backbone(inputs))}

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        return self.predictions_from_outputs(self.export_outputs(batch["inputs"]), batch)

    def predictions_from_outputs(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> list[dict[str, Any]]:
        probabilities = torch.softmax(torch.as_tensor(outputs["logits"]).float(), dim=-1)
        results = []
        for row in probabilities:
            best = int(row.argmax())
            results.append({
                "label": self.label_names[best],
                "score": float(row[best]),
                "probabilities": {name: float(p) for name, p in zip(self.label_names, row)},
            })
        return results

    def save_artifacts(self, run: RunDirectory) -> list[Path]:
        """Plot the confusion matrix of the last evaluation (called by the trainer at the end)."""
        from polygraft.plots import plot_confusion_matrix

        return [plot_confusion_matrix(self.confusion_matrix(), self.label_names, run.plot("confusion"))]
