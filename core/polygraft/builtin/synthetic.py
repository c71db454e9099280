"""Synthetic, learnable data made on the fly (no files): Gaussian clusters, one per class.

Example:
    >>> from polygraft.builtin.synthetic import SyntheticClassification
    >>> data = SyntheticClassification(size=4, num_classes=2, in_features=3, seed=0)
    >>> sorted(data[0])
    ['label', 'x']
"""

from __future__ import annotations

import random
from typing import Any

from polygraft.interfaces.datasource import DataSource


class SyntheticClassification(DataSource):
    """``size`` examples ``{"x": [...], "label": "class_k"}``; ``sequence_length`` > 0 makes sequences."""

    def __init__(self, *, size: int = 256, num_classes: int = 3, in_features: int = 8, noise: float = 0.5,
                 sequence_length: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.name = "synthetic-classification"
        self.size = size
        self.num_classes = num_classes
        self.in_features = in_features
        self.noise = noise
        self.sequence_length = sequence_length
        self.seed = seed
        self.label_names = [f"class_{k}" for k in range(num_classes)]
        rng = random.Random(seed)
        self.centres = [[rng.gauss(0.0, 1.0) for _ in range(in_features)] for _ in range(num_classes)]

    def __len__(self) -> int:
        return self.size

    def _example(self, index: int) -> dict[str, Any]:
        rng = random.Random(self.seed * 1_000_003 + index)
        label = index % self.num_classes
        centre = self.centres[label]

        def vector() -> list[float]:
            return [c + rng.gauss(0.0, self.noise) for c in centre]

        x: Any = [vector() for _ in range(rng.randint(1, self.sequence_length))] if self.sequence_length else vector()
        return {"x": x, "label": self.label_names[label]}


def create_synthetic_classification(**options: Any) -> SyntheticClassification:
    """Factory registered as dataset ``synthetic-classification``."""
    options.pop("split", None)  # every split is drawn the same way; pass a different seed for held-out data
    return SyntheticClassification(**options)
