"""The ``columns`` backbone: the numbers and categories of a table row (AutoGluon MultiModal's numerical and
categorical MLPs in one), for a fusion branch or on its own.

The preprocessor reads each named column of the example: numbers are standardised with the training split's mean
and standard deviation (a missing number becomes the mean, with a 1 in its missing-indicator input); categories
map to ids of a vocabulary of each column's ``buckets - 1`` most frequent training values (0 = unseen or missing).
Both are fitted before training (``Preprocessor.fit``) and come back out of ``export()``, so a saved model
rebuilds the same preprocessing. The network embeds the categories, concatenates them with the numbers and their
indicators, and runs a residual MLP.

Example:
    >>> from polygraft.builtin.columns import create_columns_backbone
    >>> backbone = create_columns_backbone(numbers=["age"], categories=["city"], hidden=8)
    >>> pre = backbone.preprocessor
    >>> pre.fit([{"age": 30, "city": "Oslo"}, {"age": 50, "city": "Rome"}])
    >>> pre.mean, pre.vocabulary
    ([40.0], [['Oslo', 'Rome']])
    >>> backbone(pre.collate([pre({"age": "45", "city": "Rome"}), pre({"city": "Paris"})])).pooled.shape
    torch.Size([2, 8])
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polygraft.errors import ConfigError, DataError, WeightsError
from polygraft.features import Features
from polygraft.interfaces.backbone import Backbone
from polygraft.interfaces.preprocessor import Preprocessor


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value))


class ColumnsPreprocessor(Preprocessor):
    """Named number and category columns → ``numbers`` (values and missing indicators) and ``categories`` (ids)."""

    input_key = "x"
    deterministic = True

    def __init__(self, numbers: Sequence[str], categories: Sequence[str], *, buckets: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 vocabulary: Sequence[Sequence[str]] | None = None) -> None:
        self.numbers, self.categories, self.buckets = list(numbers), list(categories), int(buckets)
        self.mean = [float(v) for v in mean] if mean is not None else None
        self.std = [float(v) for v in std] if std is not None else None
        self.vocabulary = [[str(v) for v in values] for values in vocabulary] if vocabulary is not None else None
        if self.mean is not None and len(self.mean) != len(self.numbers):
            raise WeightsError(f"columns: {len(self.mean)} means for {len(self.numbers)} number columns")
        if self.vocabulary is not None and len(self.vocabulary) != len(self.categories):
            raise WeightsError(f"columns: {len(self.vocabulary)} vocabularies for {len(self.categories)} categories")

    def _number(self, example: Mapping[str, Any], column: str) -> float | None:
        value = example.get(column)
        if _missing(value):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"column {column!r}: {value!r} is not a number", path=example.get("_origin")) from None
        if not math.isfinite(number):
            raise DataError(f"column {column!r}: {value!r} is not a finite number", path=example.get("_origin"))
        return number

    def fit(self, examples: Sequence[Mapping[str, Any]]) -> None:
        """Means and standard deviations of the numbers, vocabularies of the categories (kept when already set)."""
        if self.mean is None or self.std is None:
            self.mean, self.std = [], []
            for column in self.numbers:
                values = [v for v in (self._number(examples[i], column) for i in range(len(examples))) if v is not None]
                mean = sum(values) / len(values) if values else 0.0
                std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) if values else 1.0
                self.mean.append(mean)
                self.std.append(std if std > 0 else 1.0)
        if self.vocabulary is None:
            self.vocabulary = []
            for column in self.categories:
                counts = Counter(str(examples[i][column]).strip() for i in range(len(examples))
                                 if not _missing(examples[i].get(column)))
                top = sorted(counts, key=lambda value: (-counts[value], value))[: self.buckets - 1]
                self.vocabulary.append(sorted(top))

    def __call__(self, example: Mapping[str, Any]) -> dict[str, Any]:
        values, flags = [], []
        for index, column in enumerate(self.numbers):
            number = self._number(example, column)
            if number is None:
                values.append(0.0)
                flags.append(1.0)
                continue
            if self.mean is not None and self.std is not None:
                number = (number - self.mean[index]) / self.std[index]
            values.append(number)
            flags.append(0.0)
        ids = []
        for index, column in enumerate(self.categories):
            value = example.get(column)
            known = self.vocabulary[index] if self.vocabulary is not None else []
            text = "" if _missing(value) else str(value).strip()
            ids.append(known.index(text) + 1 if text in known else 0)
        return {"numbers": torch.tensor(values + flags, dtype=torch.float32),
                "categories": torch.tensor(ids, dtype=torch.long)}

    def collate(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"numbers": torch.stack([item["numbers"] for item in items]),
                "categories": torch.stack([item["categories"] for item in items])}

    def read_input(self, value: str) -> dict[str, Any]:
        """A JSON object of columns, or a CSV row with the numbers then the categories in order."""
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
        cells = [cell.strip() for cell in value.split(",")]
        columns = self.numbers + self.categories
        if len(cells) != len(columns):
            raise DataError(f"expected {len(columns)} comma-separated values ({', '.join(columns)}), got {value!r}")
        return dict(zip(columns, cells))

    def describe(self) -> dict[str, Any]:
        return {"type": "columns", "numbers": self.numbers, "categories": self.categories, "buckets": self.buckets,
                "mean": self.mean, "std": self.std, "vocabulary": self.vocabulary}


class ColumnsBackbone(Backbone):
    """Category embeddings + numbers → ``hidden``, then ``depth`` residual blocks and a final LayerNorm."""

    modality = "any"

    def __init__(self, preprocessor: ColumnsPreprocessor, *, hidden: int, depth: int, embedding_dim: int,
                 dropout: float) -> None:
        super().__init__()
        self.feature_dim = hidden
        self._preprocessor = preprocessor
        self.embeddings = nn.ModuleList(nn.Embedding(preprocessor.buckets, embedding_dim)
                                        for _ in preprocessor.categories)
        width = 2 * len(preprocessor.numbers) + embedding_dim * len(preprocessor.categories)
        self.stem = nn.Linear(width, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(),
                                                  nn.Dropout(dropout)) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden)

    @property
    def preprocessor(self) -> ColumnsPreprocessor:
        return self._preprocessor

    def forward(self, inputs: Mapping[str, Any]) -> Features:
        parts = [inputs["numbers"]]
        parts += [embed(inputs["categories"][:, index]) for index, embed in enumerate(self.embeddings)]
        h = self.stem(torch.cat(parts, dim=-1))
        for block in self.blocks:
            h = h + block(h)
        return Features(pooled=self.norm(h))

    def layer_groups(self) -> list[nn.Module]:
        return [nn.ModuleList([self.embeddings, self.stem]), *self.blocks, self.norm]

    def export(self, directory: Path) -> dict[str, Any]:
        pre = self.preprocessor
        return {**self.build_options, "mean": pre.mean, "std": pre.std, "vocabulary": pre.vocabulary}


def create_columns_backbone(*, weights: str | None = None, numbers: list[str] | None = None,
                            categories: list[str] | None = None, hidden: int = 64, depth: int = 2,
                            embedding_dim: int = 8, buckets: int = 32, dropout: float = 0.1,
                            mean: list[float] | None = None, std: list[float] | None = None,
                            vocabulary: list[list[str]] | None = None) -> ColumnsBackbone:
    """Factory registered as backbone ``columns``.

    Args:
        weights: a safetensors file of a ``ColumnsBackbone`` with these options.
        numbers: the number columns, in order. categories: the category columns.
        hidden, depth: the MLP's width and residual blocks. embedding_dim: per category column.
        buckets: category ids per column (the ``buckets - 1`` most frequent training values, 0 for the rest).
        mean, std, vocabulary: fitted statistics (set by a saved model; fitted on the training split otherwise).
    """
    numbers, categories = list(numbers or []), list(categories or [])
    if not numbers and not categories:
        raise ConfigError("columns: name the columns it reads: numbers: [...] and/or categories: [...]")
    if len(set(numbers + categories)) != len(numbers) + len(categories):
        raise ConfigError(f"columns: a column is listed twice in numbers {numbers} / categories {categories}")
    if min(hidden, depth + 1, embedding_dim) < 1 or buckets < 2 or not 0 <= dropout < 1:
        raise ConfigError("columns: hidden and embedding_dim must be ≥ 1, depth ≥ 0, buckets ≥ 2, dropout in [0, 1)")
    pre = ColumnsPreprocessor(numbers, categories, buckets=buckets, mean=mean, std=std, vocabulary=vocabulary)
    backbone = ColumnsBackbone(pre, hidden=hidden, depth=depth, embedding_dim=embedding_dim, dropout=dropout)
    backbone.build_options = {"numbers": numbers, "categories": categories, "hidden": hidden, "depth": depth,
                              "embedding_dim": embedding_dim, "buckets": buckets, "dropout": dropout}
    if weights is not None:
        from safetensors.torch import load_file

        try:
            backbone.load_state_dict(load_file(weights), strict=True)
        except (OSError, RuntimeError) as exc:
            raise WeightsError(f"{weights}: not the weights of a columns backbone with these options: {exc}") from exc
    return backbone


__all__ = ["ColumnsBackbone", "ColumnsPreprocessor", "create_columns_backbone"]
