"""The torch Datasets a loader reads, the collate function, and data errors carried out of DataLoader workers.

* :class:`PreparedDataset`: raw examples of a source run through the pipeline's ``prepare`` on each read.
* :class:`CachedDataset`: prepared examples the input cache kept (a list in memory or a disk store).
* :class:`DecodedSource`: decoded examples of a file-backed source kept in memory (training transforms still run).
* :class:`Collate`: the pipeline's ``collate`` plus ``meta["index"]``, each example's position in its source.

A :class:`~polygraft.errors.PolygraftError` raised while preparing data (a bad file, an unknown label) travels from
a DataLoader worker to the main process as a :class:`FailedExample` and :func:`raise_worker_errors` raises it there
as itself, so the user reads the same one-line error with or without workers.

Example:
    >>> from polygraft.inputs.datasets import PreparedDataset
    >>> from polygraft.interfaces import ListSource
    >>> class Upper:
    ...     def prepare(self, example): return {"text": example["text"].upper()}
    >>> PreparedDataset(ListSource([{"text": "a"}]), Upper())[0]
    (0, {'text': 'A'})
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from polygraft.errors import PolygraftError
from polygraft.interfaces import DataPipeline, DataSource

if TYPE_CHECKING:
    from polygraft.inputs.cache.disk import DiskStore


class FailedExample:
    """A data error caught where an example was prepared (maybe in a worker), to be raised in the trainer."""

    def __init__(self, error: PolygraftError) -> None:
        self.error = error


class PreparedDataset(Dataset):
    """Raw examples of a DataSource run through the module's picklable pipeline (inside workers)."""

    def __init__(self, source: DataSource, pipeline: DataPipeline) -> None:
        self.source = source
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, Mapping[str, Any] | FailedExample]:
        try:
            return index, self.pipeline.prepare(self.source[index])
        except PolygraftError as exc:  # raised again in the main process, without a worker traceback
            return index, FailedExample(exc)


class CachedDataset(Dataset):
    """``(index, prepared example)`` from a list or a :class:`DiskStore`; ``positions`` maps source indices."""

    def __init__(self, store: Sequence[Any] | DiskStore, positions: dict[int, int] | None = None) -> None:
        self.store = store
        self.positions = positions

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.store[index if self.positions is None else self.positions[index]]

    def kept(self) -> Iterator[tuple[int, Any]]:
        """Every ``(source index, prepared example)`` held, in store order (the length pass reads them)."""
        if self.positions is None:
            yield from ((index, self.store[index]) for index in range(len(self.store)))
        else:
            yield from ((index, self.store[position]) for index, position in self.positions.items())


class DecodedSource(DataSource):
    """Decoded examples of another source, kept in memory (each read gets its own shallow copy of the dict)."""

    storage = "memory"

    def __init__(self, parent: DataSource, examples: list[dict[str, Any]]) -> None:
        super().__init__()
        self.parent, self.examples = parent, examples
        self.name, self.label_names = parent.name, parent.label_names

    def __len__(self) -> int:
        return len(self.examples)

    def _example(self, index: int) -> dict[str, Any]:
        return dict(self.examples[index])

    def lengths(self) -> list[int] | None:
        return self.parent.lengths()


class Collate:
    """The pipeline's ``collate`` plus ``meta["index"]``; a batch holding a failed example becomes that failure."""

    def __init__(self, pipeline: DataPipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, pairs: list[tuple[int, Any]]) -> dict[str, Any] | FailedExample:
        for _, item in pairs:
            if isinstance(item, FailedExample):
                return item
        try:
            batch = self.pipeline.collate([item for _, item in pairs])
        except PolygraftError as exc:
            return FailedExample(exc)
        batch.setdefault("meta", {})["index"] = torch.tensor([index for index, _ in pairs], dtype=torch.long)
        return batch


def raise_worker_errors(loader: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``loader``, raising a data error caught in a worker (a :class:`FailedExample`) as the error itself."""
    for batch in loader:
        if isinstance(batch, FailedExample):
            raise batch.error
        yield batch
