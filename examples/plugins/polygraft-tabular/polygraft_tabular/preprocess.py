"""The standardising preprocessor: ``(x - mean) / std`` with the statistics fitted on the training split.

``fit`` runs once before training (the trainer calls it with the training examples). The statistics are part of
``describe()`` and come back out of the backbone's ``export()``, so ``polygraft.load`` rebuilds the same
preprocessing, and refuses a rebuild that differs.

Example:
    >>> from polygraft_tabular.preprocess import Standardize
    >>> pre = Standardize(in_features=2)
    >>> pre.fit([{"x": [1.0, 10.0]}, {"x": [3.0, 30.0]}])
    >>> pre.mean, pre.std
    ([2.0, 20.0], [1.0, 10.0])
    >>> pre.collate([pre({"x": [3.0, 30.0]})])["x"].tolist()
    [[1.0, 1.0]]
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from polygraft.errors import DataError
from polygraft.interfaces import Preprocessor


class Standardize(Preprocessor):
    """``{"x": [f1, ...]}`` → a float tensor, standardised once fitted (identity before)."""

    input_key = "x"

    def __init__(self, in_features: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        self.in_features = in_features
        self.mean = [float(v) for v in mean] if mean is not None else None
        self.std = [float(v) for v in std] if std is not None else None
        for name, value in (("mean", self.mean), ("std", self.std)):
            if value is not None and len(value) != in_features:
                raise DataError(f"{name} has {len(value)} values for {in_features} features")

    def _row(self, example: Mapping[str, Any]) -> list[float]:
        if self.input_key not in example:
            raise DataError(f"example has no {self.input_key!r} (keys: {sorted(example)})", path=example.get("_origin"))
        row = [float(v) for v in example[self.input_key]]
        if len(row) != self.in_features:
            raise DataError(f"expected {self.in_features} features, got {len(row)}", path=example.get("_origin"))
        return row

    def fit(self, examples: Sequence[Mapping[str, Any]]) -> None:
        """Learn each feature's mean and standard deviation (kept when already set, e.g. by a saved model)."""
        if self.mean is not None and self.std is not None:
            return
        rows = torch.tensor([self._row(examples[i]) for i in range(len(examples))], dtype=torch.float64)
        if len(rows) < 2:
            raise DataError(f"need at least 2 training rows to fit the standardiser, got {len(rows)}")
        std = rows.std(dim=0, correction=0)  # population std, as scikit-learn's StandardScaler
        self.mean = rows.mean(dim=0).tolist()
        self.std = torch.where(std > 0, std, torch.ones_like(std)).tolist()

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        x = torch.tensor(self._row(example), dtype=torch.float32)
        if self.mean is not None and self.std is not None:
            x = (x - torch.tensor(self.mean, dtype=torch.float32)) / torch.tensor(self.std, dtype=torch.float32)
        return {"x": x}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"x": torch.stack([item["x"] for item in items])}

    def read_input(self, value: str) -> dict[str, Any]:
        """``polygraft predict RUN "[14.2, 1.7, ...]"`` (a JSON list) or ``"14.2,1.7,..."`` (a CSV row)."""
        try:
            row = json.loads(value) if value.lstrip().startswith("[") else [float(v) for v in value.split(",")]
        except ValueError as exc:
            raise DataError(f"expected a JSON list or a CSV row of {self.in_features} numbers, got {value!r}") from exc
        return {"x": self._row({"x": row})}  # checks the number of features

    def describe(self) -> dict[str, Any]:
        return {"type": "standardize", "in_features": self.in_features, "mean": self.mean, "std": self.std}
