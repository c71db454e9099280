"""Regression of one or more numbers per example from pooled features.

Targets are read from the example's ``label`` (a number, or a list of numbers for several targets; numbers written
as text are parsed): anything else is a :class:`~polygraft.errors.DataError` naming the example's file and line.
The recipe's ``labels:`` (or the data's ``target_names``) name the targets; otherwise ``target`` or ``target_0``,
``target_1``... The head predicts the targets standardised with the mean and standard deviation of the training
split (``standardize: true``, the default; fitted before training and saved in the model's weights), so one
learning rate suits prices and percentages alike; predictions and metrics are in the targets' own units.

Loss: ``mse`` (default) or ``huber`` (``huber_delta``, on the standardised scale). Metrics, each averaged over the
targets as scikit-learn's ``multioutput="uniform_average"`` does (and per target when there are several):
``rmse``, ``mae``, ``r2`` (torchmetrics); ``rmse`` is the main one (lower is better).

Example:
    >>> import polygraft
    >>> task = polygraft.create_task("regression", backbone="toy", label_names=["price"],
    ...                              backbone_options={"in_features": 2})
    >>> batch = task.collate([task.prepare_example({"x": [0.0, 1.0], "label": "3.5"})])
    >>> batch["targets"].tolist(), sorted(task.predict(batch)[0])
    ([[3.5]], ['value', 'values'])
"""

from __future__ import annotations

import math
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
from polygraft.interfaces.task import Task
from polygraft.interfaces.training_module import StepOutput
from polygraft.tasks.auxiliary import auxiliary_heads, auxiliary_loss
from polygraft.tasks.targets import MISSING, target_values

if TYPE_CHECKING:
    from polygraft.interfaces import DataSource
    from polygraft.run import RunDirectory

LOSSES = ("mse", "huber")
SCATTER_POINTS = 5000
"""Predictions kept (the first ones of the last evaluation) for the predicted-vs-true plot."""


def parse_targets(value: Any, count: int, origin: str | None) -> list[float]:
    """``value`` (a number, a numeric string, or a list of ``count`` of them) as floats, or a DataError."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    if len(values) != count:
        raise DataError(f"expected {count} target value(s), got {len(values)}: {value!r}", path=origin)
    result = []
    for item in values:
        if isinstance(item, bool) or item is None or (isinstance(item, str) and not item.strip()):
            raise DataError(f"target {item!r} is not a number (a regression target must be a number)", path=origin)
        try:
            number = float(item)
        except (TypeError, ValueError):
            raise DataError(f"target {item!r} is not a number (a regression target must be a number)",
                            path=origin) from None
        if not math.isfinite(number):
            raise DataError(f"target {item!r} is not a finite number", path=origin)
        result.append(number)
    return result


class RegressionHead(Head):
    """Dropout + a linear layer: one output per target."""

    def __init__(self, in_features: int, num_targets: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_targets)

    def forward(self, features: Features) -> torch.Tensor:
        return self.linear(self.dropout(features.pool()))


class RegressionPipeline(DataPipeline):
    """Backbone preprocessing plus the parsed target values."""

    random_prepare = False

    def __init__(self, preprocessor: Preprocessor, num_targets: int, label_key: str = "label") -> None:
        self.preprocessor = preprocessor
        self.num_targets = num_targets
        self.label_key = label_key

    def prepare(self, example: Mapping[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"inputs": self.preprocessor(example)}
        if self.label_key in example:
            item["target"] = parse_targets(example[self.label_key], self.num_targets, example.get("_origin"))
        return item

    def collate(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        batch = self.collate_inputs([item["inputs"] for item in items])
        if items and "target" in items[0]:
            batch["targets"] = torch.tensor([item["target"] for item in items], dtype=torch.float32)
        return batch


class RegressionTask(Task):
    """MSE or Huber regression of standardised targets (see the module docstring)."""

    def __init__(self, backbone: Backbone, *, label_names: Sequence[str], loss: str = "mse",
                 huber_delta: float = 1.0, standardize: bool = True, dropout: float = 0.0, label_key: str = "label",
                 augment: bool | dict[str, Any] = False) -> None:
        if loss not in LOSSES:
            from polygraft.options import closest

            near = closest(str(loss), LOSSES, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"regression: loss must be one of {', '.join(LOSSES)}, got {loss!r}{hint}")
        if not huber_delta > 0:
            raise ConfigError(f"regression: huber_delta must be > 0, got {huber_delta}")
        n = len(label_names)
        super().__init__(backbone, RegressionHead(backbone.feature_dim, n, dropout=dropout), label_names=label_names)
        self.loss_name, self.huber_delta, self.standardize = loss, float(huber_delta), bool(standardize)
        self.label_key, self.augment = label_key, augment
        # the training split's statistics; saved with the weights, so a loaded model predicts in the same units
        self.register_buffer("target_mean", torch.zeros(n))
        self.register_buffer("target_std", torch.ones(n))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.auxiliary = auxiliary_heads(backbone, lambda dim: RegressionHead(dim, n, dropout=dropout))
        self.metrics = torchmetrics.MetricCollection({
            "mse": torchmetrics.MeanSquaredError(num_outputs=n),
            "mae": torchmetrics.MeanAbsoluteError(num_outputs=n),
            "r2": torchmetrics.R2Score(multioutput="raw_values") if n > 1 else torchmetrics.R2Score(),
        }, compute_groups=False)
        self._scatter: list[torch.Tensor] = []

    @property
    def num_targets(self) -> int:
        return len(self.label_names)

    @classmethod
    def labels_from_data(cls, source: DataSource, *, label_key: str | None = None, **options: Any) -> list[str]:
        """The data's ``target_names`` (a manifest's label columns), else ``target`` / ``target_0``, ``target_1``...
        by the first example's number of targets."""
        names = _target_names(source)
        if names:
            return names
        for value, origin in target_values(source, label_key or cls.label_key):
            if value is MISSING:
                raise DataError(f"an example has no {label_key or cls.label_key!r} target; give the data one",
                                path=origin)
            count = len(value) if isinstance(value, list | tuple) else 1
            return ["target"] if count == 1 else [f"target_{i}" for i in range(count)]
        raise DataError("the training data is empty: no target to read")

    def unknown_labels(self, source: DataSource) -> list[str]:
        return []  # targets are numbers, not a vocabulary

    def fit_data(self, train_data: DataSource) -> None:
        """The backbone's fitted preprocessing, then the targets' mean and standard deviation (population, as
        scikit-learn's ``StandardScaler``; 1 for a constant target). A loaded model keeps its own."""
        super().fit_data(train_data)
        if not self.standardize or bool(self.fitted):
            return
        rows = [parse_targets(value, self.num_targets, origin) for value, origin in
                target_values(train_data, self.label_key) if value is not MISSING]
        if not rows:
            raise DataError(f"no training example has a {self.label_key!r} target")
        values = torch.tensor(rows, dtype=torch.float64)
        std = values.std(dim=0, correction=0)
        with torch.no_grad():
            self.target_mean.copy_(values.mean(dim=0))
            self.target_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))
            self.fitted.fill_(True)

    def data_pipeline(self, *, training: bool) -> RegressionPipeline:
        preprocessor = self.backbone.preprocessor
        if training and self.augment:
            preprocessor = preprocessor.for_training(**(self.augment if isinstance(self.augment, dict) else {}))
        return RegressionPipeline(preprocessor, self.num_targets, self.label_key)

    def _scaled(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self.target_mean) / self.target_std

    def _row_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scaled = self._scaled(targets)
        if self.loss_name == "huber":
            return F.huber_loss(outputs.float(), scaled, delta=self.huber_delta, reduction="none").mean(dim=-1)
        return F.mse_loss(outputs.float(), scaled, reduction="none").mean(dim=-1)

    def forward(self, batch: Batch) -> StepOutput:
        features = self.backbone(batch["inputs"])
        outputs = self.head(features)
        loss = self._row_loss(outputs, batch["targets"]).mean()
        if self.training:
            extra = auxiliary_loss(self.auxiliary, features, getattr(self.backbone, "auxiliary_loss_weight", 0.0),
                                   lambda out: self._row_loss(out, batch["targets"]))
            if extra is not None:
                loss = loss + extra
        return StepOutput(loss=loss, outputs=outputs)

    def values(self, outputs: torch.Tensor) -> torch.Tensor:
        """Head outputs in the targets' own units."""
        return outputs.float() * self.target_std + self.target_mean

    def update_metrics(self, batch: Batch, output: StepOutput) -> None:
        predicted, target = self.values(output.outputs.detach()), batch["targets"].float()
        if self.num_targets == 1:
            self.metrics.update(predicted.squeeze(-1), target.squeeze(-1))
        else:
            self.metrics.update(predicted, target)
        kept = sum(len(part) for part in self._scatter)
        if kept < SCATTER_POINTS:
            self._scatter.append(torch.stack([target, predicted], dim=-1)[: SCATTER_POINTS - kept].cpu())

    def compute_metrics(self) -> dict[str, float]:
        values = {name: value.double().reshape(-1) for name, value in self.metrics.compute().items()}
        per_target = {"rmse": values["mse"].sqrt(), "mae": values["mae"], "r2": values["r2"]}
        metrics = {name: float(series.mean()) for name, series in per_target.items()}
        if self.num_targets > 1:
            for name, series in per_target.items():
                metrics.update({f"{name}_{target}": float(v) for target, v in zip(self.label_names, series)})
        return metrics

    def reset_metrics(self) -> None:
        self.metrics.reset()
        self._scatter = []

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[dict[str, Any]]:
        values = self.values(self.head(self.backbone(batch["inputs"])))
        results = []
        for row in values.tolist():
            result: dict[str, Any] = {"values": dict(zip(self.label_names, row))}
            if len(row) == 1:
                result["value"] = row[0]
            results.append(result)
        return results

    def export(self, directory: Path) -> dict[str, Any]:
        """Also shows the fitted target statistics (they are loaded from the weights)."""
        return {**super().export(directory), "target_mean": self.target_mean.tolist(),
                "target_std": self.target_std.tolist()}

    def save_artifacts(self, run: RunDirectory) -> list[Path]:
        """Predicted against true values of the last evaluation (up to 5,000 examples), one panel per target."""
        if not self._scatter:
            return []
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        pairs = torch.cat(self._scatter).numpy()
        figure, axes = plt.subplots(1, self.num_targets, figsize=(4 * self.num_targets, 4), squeeze=False)
        for index, (name, axis) in enumerate(zip(self.label_names, axes[0])):
            true, predicted = pairs[:, index, 0], pairs[:, index, 1]
            axis.scatter(true, predicted, s=6, alpha=0.5)
            low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
            axis.plot([low, high], [low, high], color="gray", linewidth=1)
            axis.set(xlabel=f"true {name}", ylabel=f"predicted {name}", title=name)
        figure.tight_layout()
        path = run.plot("predictions")
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return [path]


def _target_names(source: Any) -> list[str] | None:
    for _ in range(8):
        names = getattr(source, "target_names", None)
        if isinstance(names, list | tuple) and names:
            return [str(n) for n in names]
        source = getattr(source, "parent", None)
        if source is None:
            return None
    return None


__all__ = ["RegressionHead", "RegressionPipeline", "RegressionTask", "parse_targets"]
