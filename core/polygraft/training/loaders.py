"""The DataLoaders of one fit or evaluation: what the input cache keeps of each split, and the workers that pay.

:class:`TrainerLoaders` asks the :class:`~polygraft.training.prepared.InputCache` (``trainer.cache``) what to keep
of a split read more than once, then builds the loader with :func:`~polygraft.training.data.make_loader`:
``trainer.num_workers`` DataLoader workers, or as many as pay for what is still done per read
(:func:`~polygraft.training.workers.auto_workers`).

Example:
    >>> import polygraft
    >>> from polygraft.training.config import TrainerConfig
    >>> from polygraft.training.distributed import DistributedContext
    >>> from polygraft.training.loaders import TrainerLoaders
    >>> data = polygraft.load_dataset("synthetic-classification", size=32, in_features=4)
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=data.label_names,
    ...                              backbone_options={"in_features": 4})
    >>> loaders = TrainerLoaders(TrainerConfig(batch_size=8), DistributedContext(), pin_memory=False)
    >>> loader, kept = loaders.evaluation(data, task.data_pipeline(training=False), split="val", passes=3)
    >>> len(loader), kept.kind
    (4, 'memory')
"""

from __future__ import annotations

import os

from torch.utils.data import DataLoader

from polygraft.interfaces import DataPipeline, DataSource, TrainingModule
from polygraft.training.config import TrainerConfig
from polygraft.training.data import check_sizes, make_loader
from polygraft.training.distributed import DistributedContext
from polygraft.training.prepared import InputCache, SplitInput, planned_reads


class TrainerLoaders:
    """Builds the training and evaluation loaders of one fit; one input cache (and memory budget) for all splits."""

    def __init__(self, config: TrainerConfig, dist: DistributedContext, *, pin_memory: bool) -> None:
        self.config, self.dist, self.pin_memory = config, dist, pin_memory
        self.cache = InputCache(config.cache, memory_mb=config.cache_memory_mb, rank=dist.rank,
                                world_size=dist.world_size,
                                local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))

    def for_fit(self, module: TrainingModule, train_data: DataSource,
                val_data: DataSource | None) -> tuple[DataLoader, DataLoader | None]:
        """The training loader and the validation loader (when there is validation data) of one fit."""
        epochs, validations = planned_reads(self.config, len(train_data), self.dist.world_size)
        reference = module.data_pipeline(training=False)
        train = self.training(train_data, module.data_pipeline(training=True), epochs=epochs, reference=reference)
        if val_data is None:
            return train, None
        return train, self.evaluation(val_data, reference, split="val", passes=validations)[0]

    def training(self, data: DataSource, pipeline: DataPipeline, *, epochs: int,
                 reference: DataPipeline) -> DataLoader:
        """The resumable training loader; ``reference`` is the evaluation pipeline (equal to ``pipeline`` when
        training does not augment, so its prepared examples may be kept too)."""
        cfg = self.config
        kept = self.cache.prepare(data, pipeline, split="train", training=True, passes=epochs, reference=reference)
        return make_loader(kept.source, pipeline, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                           drop_last=cfg.drop_last, num_workers=self._workers(kept), dist=self.dist,
                           pin_memory=self.pin_memory, group_by_length=cfg.group_by_length, dataset=kept.dataset)

    def evaluation(self, data: DataSource, pipeline: DataPipeline, *, split: str,
                   passes: int = 1) -> tuple[DataLoader, SplitInput]:
        """The loader of an evaluation split read ``passes`` times (each rank its shard), and what was kept."""
        check_sizes(data, batch_size=1, world_size=1, drop_last=False, split="evaluation")
        kept = self.cache.prepare(data, pipeline, split=split, training=False, passes=passes)
        loader = make_loader(kept.source, pipeline, batch_size=self.config.eval_batch_size or self.config.batch_size,
                             shuffle=False, seed=self.config.seed, drop_last=False, num_workers=self._workers(kept),
                             dist=self.dist, pin_memory=self.pin_memory, dataset=kept.dataset,
                             persistent_workers=passes > 1)
        return loader, kept

    def lines(self) -> list[str]:
        """What each split kept, for the run log."""
        return self.cache.lines()

    def _workers(self, split: SplitInput) -> int:
        """``trainer.num_workers``, or the number that pays for what this split still does per read."""
        workers = self.config.num_workers
        return workers if workers is not None else self.cache.workers(split)
