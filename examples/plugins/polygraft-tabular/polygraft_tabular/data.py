"""Dataset ``wine``: scikit-learn's 178 wines, 13 measurements each, three cultivars, seeded splits.

Examples are ``{"x": [13 floats], "label": "class_0" | "class_1" | "class_2", "_origin": "wine:<row>"}``;
``label_names`` are scikit-learn's ``target_names`` in their order, which is the order of the model's classes.

Example:
    >>> from polygraft_tabular.data import WineSource
    >>> train = WineSource(split="train")
    >>> len(train), train.label_names, len(train[0]["x"])
    (106, ['class_0', 'class_1', 'class_2'], 13)
"""

from __future__ import annotations

import random

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces import InMemorySource
from polygraft.interfaces.datasource import SPLITS


class WineSource(InMemorySource):
    """The wine data, split by seed into train / val / test (60/20/20 by default) or ``all``.

    ``shift`` adds a constant to every feature (a way to see fitted standardisation at work).
    """

    def __init__(self, *, split: str = "train", seed: int = 0, val_fraction: float = 0.2,
                 test_fraction: float = 0.2, shift: float = 0.0) -> None:
        super().__init__()
        if split not in SPLITS:
            raise ConfigError(f"wine: split must be one of {SPLITS}, got {split!r}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ConfigError("wine: val_fraction and test_fraction must be in [0, 1) and leave training rows")
        try:
            from sklearn.datasets import load_wine
        except ImportError as exc:
            raise DataError("dataset 'wine' needs scikit-learn: pip install scikit-learn") from exc
        wine = load_wine()
        order = list(range(len(wine.target)))
        random.Random(seed).shuffle(order)
        n_test, n_val = round(len(order) * test_fraction), round(len(order) * val_fraction)
        if split == "val" and n_val == 0:
            raise ConfigError("wine has no val split with val_fraction: 0")
        parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:],
                 "all": order}
        self.name = "wine"
        self.label_names = [str(name) for name in wine.target_names]
        self.examples = [{"x": [float(v) + shift for v in wine.data[i]], "label": self.label_names[int(wine.target[i])],
                          "_origin": f"wine:{i}"} for i in parts[split]]
