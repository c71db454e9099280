"""Multi-label classification: any number of labels per example (tags, genres, attributes), from pooled features.

An example's ``label`` is a list of label names, or a string of them separated by ``label_separator`` (``|`` by
default: ``"comedy|drama"``); an empty list or string means no label applies. Each label is an independent
sigmoid output trained with binary cross-entropy; a label is predicted when its probability reaches ``threshold``
(0.5 by default).

Metrics (torchmetrics, checked against scikit-learn): ``micro_f1`` (the main one), ``macro_f1``, ``map`` (mean
average precision over labels, computed exactly from every evaluated example's probabilities, which are kept
until the end of each evaluation: ``examples × labels`` floats) and ``exact_match`` (the whole label set right).

Example:
    >>> import polygraft
    >>> task = polygraft.create_task("multilabel-classification", backbone="toy", label_names=["a", "b", "c"],
    ...                              backbone_options={"in_features": 2})
    >>> batch = task.collate([task.prepare_example({"x": [0.0, 1.0], "label": "a|c"})])
    >>> batch["targets"].tolist()
    [[1.0, 0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from polygraft.tasks.auxiliary import auxiliary_heads, auxiliary_loss
from polygraft.tasks.targets import MISSING, cheap_target_values, target_values

if TYPE_CHECKING:
    from polygraft.interfaces import DataSource


def split_labels(value: Any, separator: str | None, origin: str | None = None) -> list[str]:
    """An example's labels: a list of names, or a string split on ``separator`` (blank parts dropped)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
            raise DataError(f"labels must be names, got {value!r}", path=origin)
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value)
        parts = text.split(separator) if separator else [text]
        return [part.strip() for part in parts if part.strip()]
    raise DataError(f"expected a list of labels or a {separator!r}-separated string, got {value!r}", path=origin)


class MultilabelHead(Head):
    """Dropout + a linear layer: one logit per label."""

    def __init__(self, in_features: int, num_labels: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_labels)

    def forward(self, features: Features) -> torch.Tensor:
        return self.linear(self.dropout(features.pool()))


class MultilabelPipeline(DataPipeline):
    """Backbone preprocessing plus the multi-hot target."""

    random_prepare = False

    def __init__(self, preprocessor: Preprocessor, label_names: Sequence[str], label_key: str,
                 separator: str | None) -> None:
        self.preprocessor = preprocessor
        self.encode = LabelEncoder(label_names)
        self.num_labels = len(label_names)
        self.label_key, self.separator = label_key, separator

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"inputs": self.preprocessor(example)}
        if self.label_key in example:
            origin = example.get("_origin")
            names = split_labels(example[self.label_key], self.separator, origin)
            item["labels"] = sorted({self.encode(name, example) for name in names})
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        if items and "labels" in items[0]:
            targets = torch.zeros(len(items), self.num_labels)
            for row, item in enumerate(items):
                targets[row, item["labels"]] = 1.0
            batch["targets"] = targets
        return batch


class MultilabelTask(Task):
    """Binary cross-entropy per label on pooled features (see the module docstring)."""

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], threshold: float = 0.5,
                 label_separator: str | None = "|", dropout: float = 0.1, label_key: str = "label",
                 augment: bool | dict[str, Any] = False) -> None:
        if not 0 < threshold < 1:
            raise ConfigError(f"multilabel-classification: threshold must be in (0, 1), got {threshold}")
        n = len(label_names)
        super().__init__(backbone, MultilabelHead(backbone.feature_dim, n, dropout=dropout), label_names=label_names)
        self.threshold, self.label_separator = float(threshold), label_separator
        self.label_key, self.augment = label_key, augment
        self.auxiliary = auxiliary_heads(backbone, lambda dim: MultilabelHead(dim, n, dropout=dropout))
        metrics: dict[str, torchmetrics.Metric] = {
            "micro_f1": torchmetrics.classification.MultilabelF1Score(n, threshold=threshold, average="micro"),
            "macro_f1": torchmetrics.classification.MultilabelF1Score(n, threshold=threshold, average="macro"),
            "exact_match": torchmetrics.classification.MultilabelExactMatch(n, threshold=threshold),
            "map": torchmetrics.classification.MultilabelAveragePrecision(n, average="macro", thresholds=None),
        }
        self.metrics = torchmetrics.MetricCollection(metrics, compute_groups=False)  # type: ignore[arg-type]

    @classmethod
    def labels_from_data(cls, source: DataSource, *, label_key: str | None = None, label_separator: str | None = "|",
                         **options: Any) -> list[str]:
        """Every label the training examples carry (split on ``label_separator``), sorted."""
        seen: set[str] = set()
        for value, origin in target_values(source, label_key or cls.label_key):
            if value is not MISSING:
                seen.update(split_labels(value, label_separator, origin))
        if not seen:
            raise DataError("no training example carries a label; multi-label classification needs some")
        return sorted(seen)

    def unknown_labels(self, source: DataSource) -> list[str]:
        """Labels of ``source`` the model has no output for, when they can be read without decoding its media."""
        values = cheap_target_values(source, self.label_key)
        found = {name for value, origin in values or [] if value is not MISSING
                 for name in split_labels(value, self.label_separator, origin)}
        return sorted(found - set(self.label_names))

    def data_pipeline(self, *, training: bool) -> MultilabelPipeline:
        preprocessor = self.backbone.preprocessor
        if training and self.augment:
            preprocessor = preprocessor.for_training(**(self.augment if isinstance(self.augment, dict) else {}))
        return MultilabelPipeline(preprocessor, self.label_names, self.label_key, self.label_separator)

    @staticmethod
    def _row_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none").mean(dim=-1)

    def forward(self, batch: Batch) -> StepOutput:
        features = self.backbone(batch["inputs"])
        logits = self.head(features)
        loss = self._row_loss(logits, batch["targets"]).mean()
        if self.training:
            extra = auxiliary_loss(self.auxiliary, features, getattr(self.backbone, "auxiliary_loss_weight", 0.0),
                                   lambda out: self._row_loss(out, batch["targets"]))
            if extra is not None:
                loss = loss + extra
        return StepOutput(loss=loss, outputs=logits)

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        self.metrics.update(torch.sigmoid(output.outputs.detach().float()), batch["targets"].long())

    def compute_metrics(self) -> dict[str, float]:
        return {name: float(value) for name, value in self.metrics.compute().items()}

    def reset_metrics(self) -> None:
        self.metrics.reset()

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        probabilities = torch.sigmoid(self.head(self.backbone(batch["inputs"])).float())
        return [{"labels": [name for name, p in zip(self.label_names, row) if p >= self.threshold],
                 "probabilities": {name: float(p) for name, p in zip(self.label_names, row)}}
                for row in probabilities.tolist()]


__all__ = ["MultilabelHead", "MultilabelPipeline", "MultilabelTask", "split_labels"]
