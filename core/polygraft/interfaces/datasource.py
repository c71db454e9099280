"""Data sources: indexable collections of raw example dicts.

A raw example is ``{"text": str}``, ``{"image": PIL.Image}``, ``{"audio": waveform, "sample_rate": int}`` or
``{"x": [...]}``, plus its target (``label``, ``tags``, ``boxes``, ``transcript``) and optionally ``_origin``
("file:line") so errors can say where a bad example came from. A source that skips bad rows (when the user
asked for ``skip_invalid``) calls :meth:`DataSource.skip`, which counts the reason and keeps the first few
places; the trainer prints and saves that report for every split.

Example:
    >>> from polygraft.interfaces import ListSource
    >>> source = ListSource([{"x": [0.0], "label": "a"}, {"x": [1.0], "label": "b"}], label_names=["a", "b"])
    >>> train, val = source.split([0.5, 0.5], seed=0)
    >>> len(train), len(val)
    (1, 1)
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from polygraft.errors import ConfigError
from polygraft.fingerprint import digest, files_fingerprint

__all__ = ["SPLITS", "DataSource", "InMemorySource", "ListSource", "SubsetSource", "check_split",
           "files_fingerprint", "take_split"]

SPLITS = ("train", "val", "test", "all")
"""The split names every dataset understands (a dataset may add its own, such as ``rest``)."""

T = TypeVar("T")


def check_split(split: str | None, *, name: str, allowed: Sequence[str] = SPLITS, default: str = "all") -> str:
    """``split`` (``default`` when ``None``) if it is one of ``allowed``, else a ConfigError naming the closest.

    Example:
        >>> check_split("tset", name="digits")
        Traceback (most recent call last):
        ...
        polygraft.errors.ConfigError: digits: split must be one of ('train', 'val', 'test', 'all'), got 'tset'; did you mean 'test'?
    """
    split = default if split is None else split
    if split not in allowed:
        from polygraft.options import closest

        near = closest(str(split), list(allowed), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"{name}: split must be one of {tuple(allowed)}, got {split!r}{hint}")
    return split


def take_split(items: Sequence[T], split: str, parts: Sequence[tuple[str, int | None]], *, name: str) -> list[T]:
    """The items of ``split`` when ``items`` (already shuffled) are cut into consecutive named ``parts``.

    Each part is ``(split name, size)``; one part may have size ``None`` and takes what the others leave (it must
    keep at least one item). ``all`` is every item. The one split chooser of the packaged and generated datasets.

    Example:
        >>> parts = [("test", 2), ("val", 1), ("train", None)]
        >>> take_split(list("abcdefg"), "val", parts, name="x"), take_split(list("abcdefg"), "train", parts, name="x")
        (['c'], ['d', 'e', 'f', 'g'])
    """
    names = [part for part, _ in parts]
    check_split(split, name=name, allowed=(*names, "all"))
    if split == "all":
        return list(items)
    fixed = [size for _, size in parts if size is not None]
    if any(size < 0 for size in fixed) or sum(1 for _, size in parts if size is None) > 1:
        raise ConfigError(f"{name}: split sizes must be ≥ 0 (one of them open-ended), got {dict(parts)}")
    rest = len(items) - sum(fixed)
    if rest < (1 if len(fixed) < len(parts) else 0):
        sizes = ", ".join(f"{part}={size}" for part, size in parts if size is not None)
        raise ConfigError(f"{name}: {sizes} need {sum(fixed)} examples and must leave some for the other split; "
                          f"the set has {len(items)}")
    start = 0
    for part, size in parts:
        length = rest if size is None else size
        if part == split:
            if length == 0:
                raise ConfigError(f"{name} has no {split} split with these sizes ({dict(parts)}); give it a size > 0")
            return list(items[start : start + length])
        start += length
    raise AssertionError("unreachable")  # pragma: no cover

SHOWN_SKIPS = 5
"""How many places (file names, file:line) are kept per skip reason for the report."""


class DataSource(Sequence[dict[str, Any]]):
    """Base class. Subclasses implement ``__len__`` and ``_example(index)``."""

    name: str = ""
    label_names: list[str] | None = None

    #: Where examples come from, for the trainer's input cache. ``"memory"``: already in memory (no copy is
    #: worth keeping); ``"files"``: each read decodes a file and gives the same example every time (decoded
    #: copies may be kept in memory while augmented training transforms them anew each epoch); ``None`` (the
    #: default): not declared, so the trainer assumes nothing and prepares training examples every epoch.
    storage: str | None = None

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()  # reason -> count; reported, never silent
        self.skipped_at: dict[str, list[str]] = {}  # reason -> the first few places
        self.changed: Counter[str] = Counter()  # kept but altered (e.g. "cropped to 20 s") -> count
        self.changed_at: dict[str, list[str]] = {}

    def skip(self, reason: str, where: str | Path | None = None, *, count: int = 1) -> None:
        """Count ``count`` skipped examples for ``reason``; remember the first few places (file, file:line)."""
        self.skipped[reason] += count
        if where is not None:
            shown = self.skipped_at.setdefault(reason, [])
            if len(shown) < SHOWN_SKIPS:
                shown.append(str(where))

    def change(self, reason: str, where: str | Path | None = None, *, count: int = 1) -> None:
        """Count an example that is kept but altered (cropped, resampled from an odd rate...)."""
        self.changed[reason] += count
        if where is not None:
            shown = self.changed_at.setdefault(reason, [])
            if len(shown) < SHOWN_SKIPS:
                shown.append(str(where))

    def skip_report(self) -> dict[str, Any]:
        """``{"total": n, "reasons": {reason: {"count": c, "first": [places]}}, "changed": {...}}``."""

        def table(counts: Counter[str], places: dict[str, list[str]]) -> dict[str, Any]:
            return {reason: {"count": int(count), "first": list(places.get(reason, []))}
                    for reason, count in sorted(counts.items()) if count}

        reasons = table(self.skipped, self.skipped_at)
        return {"total": sum(r["count"] for r in reasons.values()), "reasons": reasons,
                "changed": table(self.changed, self.changed_at)}

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _example(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name or type(self).__name__}: index {index} out of range ({len(self)})")
        return self._example(index % len(self))

    def split(self, fractions: Sequence[float], *, seed: int = 0) -> list[SubsetSource]:
        """Deterministic shuffled split by fractions (or absolute counts when all are ints ≥ 1)."""
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        if all(isinstance(f, int) and f >= 1 for f in fractions):
            sizes = [int(f) for f in fractions]
            if sum(sizes) > len(order):
                raise ValueError(f"split sizes {sizes} need {sum(sizes)} examples; the source has {len(order)}")
        else:
            total = float(sum(fractions))
            sizes = [round(len(order) * f / total) for f in fractions]
            sizes[-1] = len(order) - sum(sizes[:-1])
        parts, start = [], 0
        for size in sizes:
            parts.append(SubsetSource(self, order[start : start + size]))
            start += size
        return parts

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "size": len(self), "labels": self.label_names, "skipped": self.skip_report()}

    def fingerprint(self) -> str | None:
        """A text that changes whenever any example could (file names, sizes and modification times, the
        dataset's options), or ``None`` (the default) when the source cannot tell: prepared examples of such a
        source are then kept in memory only, never in the on-disk cache."""
        return None

    def lengths(self) -> list[int] | None:
        """The compute size of each example if the source knows it without reading the examples (durations from
        audio headers, a length column), or ``None`` (the default). Only the order matters: the trainer batches
        similar sizes together (``trainer.group_by_length``) and evaluates longest first. Sources that know
        nothing leave it; the preprocessor is asked next (see ``DataPipeline.lengths``)."""
        return None


class InMemorySource(DataSource):
    """Base for sources that read everything into ``self.examples`` up front (files parsed once)."""

    examples: list[dict[str, Any]]
    storage = "memory"

    def __len__(self) -> int:
        return len(self.examples)

    def _example(self, index: int) -> dict[str, Any]:
        return self.examples[index]


class ListSource(InMemorySource):
    """Examples already in memory."""

    def __init__(self, examples: Sequence[dict[str, Any]], *, label_names: Sequence[str] | None = None,
                 name: str = "list") -> None:
        super().__init__()
        self.examples = list(examples)
        self.label_names = list(label_names) if label_names is not None else None
        self.name = name


class SubsetSource(DataSource):
    """A view on some indices of another source (keeps its label names)."""

    def __init__(self, parent: DataSource, indices: Sequence[int]) -> None:
        super().__init__()
        self.parent = parent
        self.indices = list(indices)
        self.label_names = parent.label_names
        self.name = parent.name
        self.storage = parent.storage
        self.skipped, self.skipped_at = parent.skipped, parent.skipped_at
        self.changed, self.changed_at = parent.changed, parent.changed_at

    def __len__(self) -> int:
        return len(self.indices)

    def _example(self, index: int) -> dict[str, Any]:
        return self.parent[self.indices[index]]

    def fingerprint(self) -> str | None:
        parent = self.parent.fingerprint()
        return None if parent is None else digest([parent, self.indices])

    def lengths(self) -> list[int] | None:
        known = self.parent.lengths()
        return None if known is None else [known[i] for i in self.indices]

    def first(self, count: int) -> SubsetSource:
        """A view on the first ``count`` examples of this one (a smaller split that keeps its order)."""
        return SubsetSource(self.parent, self.indices[: max(0, int(count))])
