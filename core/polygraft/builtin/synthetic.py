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

from polygraft.errors import ConfigError
from polygraft.fingerprint import digest
from polygraft.interfaces.datasource import DataSource, check_split


class SyntheticClassification(DataSource):
    """``size`` examples ``{"x": [...], "label": "class_k"}``; ``sequence_length`` > 0 makes sequences.

    ``seed`` fixes the problem (the class centres); ``split`` draws different examples of the same problem,
    so ``split="train"`` and ``split="test"`` with one seed are a proper train/test pair (``all`` is one more
draw of the same problem: generated data has no finite pool to take "all" of).
    """

    SPLITS = ("train", "val", "test", "all")
    storage = "memory"  # computed from the seed on each read: the same example every time, cheap to make again

    def __init__(self, *, size: int = 256, num_classes: int = 3, in_features: int = 8, noise: float = 0.5,
                 sequence_length: int = 0, seed: int = 0, split: str = "train") -> None:
        super().__init__()
        self.name = "synthetic-classification"
        self.size = size
        self.num_classes = num_classes
        self.in_features = in_features
        self.noise = noise
        self.sequence_length = sequence_length
        self.seed = seed
        check_split(split, name="synthetic-classification")
        for option, value, high in (("size", size, 10_000_000), ("num_classes", num_classes, 100_000),
                                    ("in_features", in_features, 100_000), ("sequence_length", sequence_length, 100_000)):
            low = 0 if option == "sequence_length" else (2 if option == "num_classes" else 1)
            if not low <= value <= high:
                raise ConfigError(f"synthetic-classification: {option} must be between {low} and {high:,}, got {value:,}")
        if noise < 0:
            raise ConfigError(f"synthetic-classification: noise must be ≥ 0, got {noise}")
        self.split_name = split
        self.label_names = [f"class_{k}" for k in range(num_classes)]
        rng = random.Random(seed)
        self.centres = [[rng.gauss(0.0, 1.0) for _ in range(in_features)] for _ in range(num_classes)]

    def __len__(self) -> int:
        return self.size

    def fingerprint(self) -> str:
        """Every setting that decides the examples (they are a function of them)."""
        return digest({"source": "synthetic-classification", "version": 1, "size": self.size,
                       "num_classes": self.num_classes, "in_features": self.in_features, "noise": self.noise,
                       "sequence_length": self.sequence_length, "seed": self.seed, "split": self.split_name})

    def _example(self, index: int) -> dict[str, Any]:
        rng = random.Random(f"{self.seed}/{self.split_name}/{index}")
        label = index % self.num_classes
        centre = self.centres[label]

        def vector() -> list[float]:
            return [c + rng.gauss(0.0, self.noise) for c in centre]

        x: Any = [vector() for _ in range(rng.randint(1, self.sequence_length))] if self.sequence_length else vector()
        return {"x": x, "label": self.label_names[label]}
