"""DataLoaders for the trainer: preprocessing in workers, per-batch collation, resumable order.

What a loader reads comes from :mod:`polygraft.training.prepared` (prepared examples kept in memory or on disk, or
decoded examples) or, when nothing is kept, from :class:`PreparedDataset`; the sampler alone decides the order, so
both give the same batches. Worker settings come from :mod:`polygraft.training.workers`.

Every batch carries ``batch["meta"]["index"]``, the position of each example in its data source, beside what the
pipeline's ``collate`` made. A :class:`~polygraft.errors.PolygraftError` raised while preparing data (a bad
file, an unknown label) travels from a DataLoader worker to the main process as data and is raised there as
itself, so the user reads the same one-line error with or without workers.

Example:
    >>> from polygraft.training.data import PreparedDataset
    >>> from polygraft.interfaces import ListSource
    >>> class Upper:
    ...     def prepare(self, example): return {"text": example["text"].upper()}
    >>> PreparedDataset(ListSource([{"text": "a"}]), Upper())[0]
    (0, {'text': 'A'})
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from polygraft.errors import ConfigError, PolygraftError, TrainingError
from polygraft.interfaces import DataPipeline, DataSource
from polygraft.training.distributed import DistributedContext, ResumableSampler, ShardSampler
from polygraft.training.length_grouping import LengthGroupedSampler
from polygraft.training.workers import loader_options


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


class FailedExample:
    """A data error caught where an example was prepared (maybe in a worker), to be raised in the trainer."""

    def __init__(self, error: PolygraftError) -> None:
        self.error = error


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


def checked(loader: DataLoader) -> Any:
    """Iterate ``loader``, raising a data error caught in a worker as the error itself."""
    for batch in loader:
        if isinstance(batch, FailedExample):
            raise batch.error
        yield batch


def check_sizes(source: DataSource, *, batch_size: int, world_size: int, drop_last: bool, split: str) -> None:
    """Clear errors for empty data and batches that cannot be filled."""
    size = len(source)
    if size == 0:
        raise TrainingError(f"the {split} dataset {source.name or ''!r} is empty; check its path and filters")
    per_rank = math.ceil(size / world_size)
    if drop_last and batch_size > per_rank:
        raise TrainingError(
            f"batch_size={batch_size} is larger than the {split} data each process gets ({per_rank} of {size}); "
            "lower trainer.batch_size or set trainer.drop_last=false"
        )


def make_loader(source: DataSource, pipeline: DataPipeline, *, batch_size: int, shuffle: bool, seed: int,
                drop_last: bool, num_workers: int, dist: DistributedContext, pin_memory: bool,
                group_by_length: bool = False, dataset: Dataset | None = None,
                persistent_workers: bool = False) -> DataLoader:
    """A resumable training loader (``shuffle`` or ``drop_last``) or an evaluation loader (each rank its shard).

    Evaluation visits examples longest first when the pipeline reports lengths; ``group_by_length`` batches
    training examples of similar length together (see :mod:`polygraft.training.length_grouping`). ``dataset``
    gives ``(index, prepared example)`` for every index of ``source`` (a cache); by default examples are read
    from ``source`` and prepared by ``pipeline`` each time.
    """
    sampler: ResumableSampler | ShardSampler
    if group_by_length:
        lengths = _lengths(source, pipeline)
        if lengths is None:
            raise ConfigError(
                f"trainer.group_by_length needs examples with a length (text, audio); "
                f"{type(getattr(pipeline, 'preprocessor', pipeline)).__name__} reports none. "
                "Set trainer.group_by_length=false"
            )
        sampler = LengthGroupedSampler(lengths, batch_size=batch_size, rank=dist.rank, world_size=dist.world_size,
                                       seed=seed, drop_last=drop_last)
    elif shuffle or drop_last:
        sampler = ResumableSampler(len(source), rank=dist.rank, world_size=dist.world_size, shuffle=shuffle,
                                   seed=seed, drop_last=drop_last)
    else:
        sampler = ShardSampler(len(source), rank=dist.rank, world_size=dist.world_size,
                               lengths=_lengths(source, pipeline))
    return DataLoader(
        dataset if dataset is not None else PreparedDataset(source, pipeline),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=Collate(pipeline),
        generator=torch.Generator().manual_seed(seed),
        **loader_options(num_workers, persistent=persistent_workers, pin_memory=pin_memory),
    )


def _lengths(source: DataSource, pipeline: DataPipeline) -> list[int] | None:
    lengths = pipeline.lengths(source)
    if lengths is not None and len(lengths) != len(source):
        raise TrainingError(f"{type(pipeline).__name__}.lengths gave {len(lengths)} lengths for {len(source)} "
                            "examples; it must give one per example")
    return lengths


def position_loader(loader: DataLoader, *, epoch: int, skip_batches: int, seed: int) -> None:
    """Put the loader at ``epoch`` with the first ``skip_batches`` batches already consumed."""
    loader.sampler.set_position(epoch, skip_batches * loader.batch_size)  # type: ignore[attr-defined]
    loader.generator.manual_seed(seed + epoch)  # worker seeds depend only on (seed, epoch)
