"""Computing a split's examples once, in this process or in DataLoader workers, and measuring what they hold.

:func:`compute` yields every example of a list of indices in order (prepared, or raw when no pipeline is given);
a data error found on the way is raised, naming the example. :func:`sample_examples` prepares a few spread-out examples to
estimate time and size; :func:`sizeof` estimates the bytes an example holds; :func:`own` copies tensors out of
shared or oversized buffers before they are kept.

Example:
    >>> import torch
    >>> from polygraft.inputs.cache.compute import own, sizeof
    >>> view = torch.zeros(100)[:10]
    >>> own(view).untyped_storage().nbytes(), sizeof(own(view)) > 40
    (40, True)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from polygraft.errors import PolygraftError
from polygraft.inputs.datasets import FailedExample
from polygraft.inputs.workers import one_thread
from polygraft.interfaces import DataPipeline, DataSource

SAMPLE = 12
"""Examples prepared up front to estimate size and time."""


class _Reading(Dataset):
    """``(position, prepared or raw example)`` of ``indices``; a data error travels as a FailedExample."""

    def __init__(self, source: DataSource, pipeline: DataPipeline | None, indices: list[int]) -> None:
        self.source, self.pipeline, self.indices = source, pipeline, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Any:
        try:
            example = self.source[self.indices[position]]
            return example if self.pipeline is None else self.pipeline.prepare(example)
        except PolygraftError as exc:
            return FailedExample(exc)


class _Wire:
    """A CPU tensor travelling from a worker as a NumPy array inside the pickled chunk: one pipe write per chunk
    instead of a shared-memory segment and a file descriptor per tensor (which costs more than preparing a small
    image)."""

    __slots__ = ("array",)

    def __init__(self, array: Any) -> None:
        self.array = array


def _map_leaves(fn: Callable[[Any], Any], value: Any) -> Any:
    """``fn`` applied to every leaf of nested dicts, lists and plain tuples (the containers rebuilt)."""
    if isinstance(value, dict):
        return {k: _map_leaves(fn, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_leaves(fn, v) for v in value]
    if type(value) is tuple:
        return tuple(_map_leaves(fn, v) for v in value)
    return fn(value)


def _to_wire(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.dtype not in (torch.bfloat16,):
        return _Wire(value.detach().contiguous().numpy())
    return value


def _from_wire(value: Any) -> Any:
    return torch.from_numpy(value.array) if isinstance(value, _Wire) else value


def _listed(items: list[Any]) -> list[Any]:
    """The DataLoader ``collate_fn`` of a worker: the chunk as a list, its tensors as NumPy arrays."""
    return [_map_leaves(_to_wire, item) for item in items]


def compute(source: DataSource, pipeline: DataPipeline | None, indices: list[int], workers: int) -> Iterator[Any]:
    """Every example of ``indices`` in order, prepared (or raw when ``pipeline`` is None); data errors raised."""
    reading = _Reading(source, pipeline, indices)
    if workers == 0:
        chunks: Any = ([reading[p]] for p in range(len(reading)))
    else:
        chunk = max(1, min(64, len(reading) // (workers * 4)))
        chunks = DataLoader(reading, batch_size=chunk, shuffle=False, num_workers=workers, collate_fn=_listed,
                            worker_init_fn=one_thread, generator=torch.Generator(), prefetch_factor=4)
    for items in chunks:
        for item in items:
            if isinstance(item, FailedExample):
                raise item.error
            yield own(_map_leaves(_from_wire, item) if workers else item)


def sample_examples(read: Callable[[int], Any], indices: list[int]) -> tuple[list[Any], float]:
    """A few examples spread over ``indices`` and the median seconds one takes (errors raised as they are)."""
    picks = sorted({indices[round(i * (len(indices) - 1) / max(1, SAMPLE - 1))] for i in range(SAMPLE)})
    items, times = [], []
    for index in picks:
        started = time.perf_counter()
        items.append(read(index))
        times.append(time.perf_counter() - started)
    return items, statistics.median(times[1:] or times)


def own(value: Any) -> Any:
    """``value`` with every tensor in its own, exactly sized memory (not a view into a larger buffer, not a
    worker's shared memory), so keeping it holds on to nothing else."""
    return _map_leaves(_own_tensor, value)


def _own_tensor(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        exact = value.untyped_storage().nbytes() == value.numel() * value.element_size()
        return value if exact and not value.is_shared() and value.is_contiguous() else value.clone()
    return value


def sizeof(value: Any) -> int:
    """Approximate bytes ``value`` holds (tensors, arrays, images, strings, numbers and containers of them)."""
    if isinstance(value, torch.Tensor):
        return value.untyped_storage().nbytes() + 80
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):  # NumPy arrays
        return nbytes + 112
    if hasattr(value, "getbands") and hasattr(value, "size"):  # PIL images
        width, height = value.size
        return width * height * len(value.getbands()) + 200
    if isinstance(value, list | tuple):
        if value and type(value[0]) is int and type(value[-1]) is int:
            return sys.getsizeof(value) + 28 * len(value)
        return sys.getsizeof(value) + sum(sizeof(v) for v in value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(sizeof(k) + sizeof(v) for k, v in value.items())
    return sys.getsizeof(value)
