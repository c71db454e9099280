"""The DataLoaders of one fit or evaluation: what the input cache keeps of each split, the sampler, the workers.

:class:`Loaders` asks the :class:`~polygraft.inputs.cache.plan.InputCache` (``trainer.cache``) what to keep of a
split read more than once, then builds the loader with :func:`make_loader`: ``num_workers`` DataLoader workers, or
as many as pay for what is still done per read (:func:`~polygraft.inputs.workers.auto_workers`). The sampler alone
decides the order (:mod:`polygraft.inputs.samplers`), so cached and uncached reads give the same batches.

Lengths (for length-grouped training batches and longest-first evaluation) come from what is already known, in
this order: the prepared examples the cache keeps (``DataPipeline.length_of``), the source
(``DataSource.lengths``), and only then the pipeline's look at the raw examples (``DataPipeline.lengths``).

Every batch carries ``batch["meta"]["index"]``, the position of each example in its data source, beside what the
pipeline's ``collate`` made.

Example:
    >>> import polygraft
    >>> from polygraft.inputs.loaders import LoaderSettings, Loaders
    >>> data = polygraft.load_dataset("synthetic-classification", size=32, in_features=4)
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
    ...                              backbone_options={"in_features": 4})
    >>> loaders = Loaders(LoaderSettings(batch_size=8), pin_memory=False)
    >>> loader, kept = loaders.evaluation(data, task.data_pipeline(training=False), split="val", passes=3)
    >>> len(loader), kept.kind
    (4, 'memory')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from polygraft.errors import ConfigError, TrainingError
from polygraft.inputs.cache.plan import InputCache, SplitInput
from polygraft.inputs.datasets import Collate, PreparedDataset
from polygraft.inputs.samplers import LengthGroupedSampler, ResumableSampler, ShardSampler
from polygraft.inputs.workers import check_workers, loader_options
from polygraft.interfaces import DataPipeline, DataSource


class Ranks(Protocol):
    """Where this process sits in a distributed run (``polygraft.training.distributed.DistributedContext``)."""

    @property
    def rank(self) -> int: ...
    @property
    def world_size(self) -> int: ...
    @property
    def local_world_size(self) -> int: ...


@dataclass(frozen=True)
class SingleProcess:
    """The :class:`Ranks` of a run without torchrun."""

    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1


@dataclass
class LoaderSettings:
    """What the loaders read of the trainer's settings (the same names as in ``trainer:``)."""

    batch_size: int = 32
    eval_batch_size: int | None = None
    seed: int = 0
    drop_last: bool = False
    group_by_length: bool = False
    num_workers: int | None = None
    cache: bool | str = "auto"
    cache_memory_mb: int | None = None

    @classmethod
    def of(cls, config: Any) -> LoaderSettings:
        """The settings of a ``TrainerConfig`` (or any object with these attributes)."""
        from dataclasses import fields

        return cls(**{spec.name: getattr(config, spec.name) for spec in fields(cls)})


class Loaders:
    """Builds the training and evaluation loaders of one fit; one input cache (and memory budget) for all splits."""

    def __init__(self, settings: LoaderSettings, ranks: Ranks = SingleProcess(), *, pin_memory: bool) -> None:
        check_workers(settings.num_workers)  # before any worker is forked
        self.settings, self.ranks, self.pin_memory = settings, ranks, pin_memory
        self.cache = InputCache(settings.cache, memory_mb=settings.cache_memory_mb, rank=ranks.rank,
                                world_size=ranks.world_size, local_world_size=ranks.local_world_size)

    def for_fit(self, train_data: DataSource, val_data: DataSource | None, *, train: DataPipeline,
                evaluation: DataPipeline, epochs: int, validations: int) -> tuple[DataLoader, DataLoader | None]:
        """The training loader (read ``epochs`` times) and the validation loader (``validations`` times)."""
        train_loader = self.training(train_data, train, epochs=epochs, reference=evaluation)
        if val_data is None:
            return train_loader, None
        return train_loader, self.evaluation(val_data, evaluation, split="val", passes=validations)[0]

    def training(self, data: DataSource, pipeline: DataPipeline, *, epochs: int,
                 reference: DataPipeline) -> DataLoader:
        """The resumable training loader; ``reference`` is the evaluation pipeline (equal to ``pipeline`` when
        training does not augment, so its prepared examples may be kept too)."""
        s = self.settings
        kept = self.cache.prepare(data, pipeline, split="train", training=True, passes=epochs, reference=reference)
        lengths = split_lengths(kept, pipeline) if s.group_by_length else None
        if s.group_by_length and lengths is None:
            raise ConfigError(
                f"trainer.group_by_length needs examples with a length (text, audio); "
                f"{type(pipeline.preprocessor or pipeline).__name__} reports none. Set trainer.group_by_length=false"
            )
        return make_loader(kept.source, pipeline, batch_size=s.batch_size, shuffle=True, seed=s.seed,
                           drop_last=s.drop_last, num_workers=self._workers(kept), ranks=self.ranks,
                           pin_memory=self.pin_memory, lengths=lengths, group_by_length=s.group_by_length,
                           dataset=kept.dataset)

    def evaluation(self, data: DataSource, pipeline: DataPipeline, *, split: str,
                   passes: int = 1) -> tuple[DataLoader, SplitInput]:
        """The loader of an evaluation split read ``passes`` times (each rank its shard), and what was kept."""
        check_sizes(data, batch_size=1, world_size=1, drop_last=False, split="evaluation")
        kept = self.cache.prepare(data, pipeline, split=split, training=False, passes=passes)
        loader = make_loader(kept.source, pipeline, batch_size=self.settings.eval_batch_size or self.settings.batch_size,
                             shuffle=False, seed=self.settings.seed, drop_last=False, num_workers=self._workers(kept),
                             ranks=self.ranks, pin_memory=self.pin_memory, lengths=split_lengths(kept, pipeline),
                             dataset=kept.dataset, persistent_workers=passes > 1)
        return loader, kept

    def lines(self) -> list[str]:
        """What each split kept, for the run log."""
        return self.cache.lines()

    def cached_on_disk(self, split: str) -> str | None:
        """The on-disk cache folder ``split`` is read from, if it is (error messages name it)."""
        kept = next((s for s in self.cache.splits if s.split == split and s.kind == "disk"), None)
        return str(kept.path) if kept is not None else None

    def _workers(self, split: SplitInput) -> int:
        """``num_workers``, or the number that pays for what this split still does per read."""
        workers = self.settings.num_workers
        return workers if workers is not None else self.cache.workers(split)


def split_lengths(split: SplitInput, pipeline: DataPipeline) -> list[int] | None:
    """Per-example lengths of a split from what is known: kept prepared examples, the source, then the pipeline."""
    source = split.source
    lengths = split.lengths if split.lengths is not None else source.lengths()
    if lengths is None:
        lengths = pipeline.lengths(source)
    if lengths is not None and len(lengths) != len(source):
        raise TrainingError(f"{type(pipeline).__name__}.lengths gave {len(lengths)} lengths for {len(source)} "
                            "examples; it must give one per example")
    return None if lengths is None else [int(n) for n in lengths]


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
                drop_last: bool, num_workers: int, ranks: Ranks, pin_memory: bool,
                lengths: Sequence[int] | None = None, group_by_length: bool = False, dataset: Dataset | None = None,
                persistent_workers: bool = False) -> DataLoader:
    """A resumable training loader (``shuffle`` or ``drop_last``) or an evaluation loader (each rank its shard).

    Evaluation visits examples longest first when ``lengths`` are given; ``group_by_length`` batches training
    examples of similar length together (:class:`~polygraft.inputs.samplers.LengthGroupedSampler`). ``dataset``
    gives ``(index, prepared example)`` for every index of ``source`` (a cache); by default examples are read from
    ``source`` and prepared by ``pipeline`` each time.
    """
    sampler: ResumableSampler | ShardSampler
    if group_by_length:
        if lengths is None:
            raise ConfigError("group_by_length needs per-example lengths")
        sampler = LengthGroupedSampler(lengths, batch_size=batch_size, rank=ranks.rank, world_size=ranks.world_size,
                                       seed=seed, drop_last=drop_last)
    elif shuffle or drop_last:
        sampler = ResumableSampler(len(source), rank=ranks.rank, world_size=ranks.world_size, shuffle=shuffle,
                                   seed=seed, drop_last=drop_last)
    else:
        sampler = ShardSampler(len(source), rank=ranks.rank, world_size=ranks.world_size, lengths=lengths)
    return DataLoader(
        dataset if dataset is not None else PreparedDataset(source, pipeline),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=Collate(pipeline),
        generator=torch.Generator().manual_seed(seed),
        **loader_options(num_workers, persistent=persistent_workers, pin_memory=pin_memory),
    )


def position_loader(loader: DataLoader, *, epoch: int, skip_batches: int, seed: int) -> None:
    """Put the loader at ``epoch`` with the first ``skip_batches`` batches already consumed."""
    loader.sampler.set_position(epoch, skip_batches * loader.batch_size)  # type: ignore[attr-defined]
    loader.generator.manual_seed(seed + epoch)  # worker seeds depend only on (seed, epoch)
