"""Preprocess once: prepared examples are computed once and reused across epochs and validations.

For each split the trainer reads more than once, :class:`InputCache` decides what to keep (``trainer.cache``):

* **prepared examples** (what ``pipeline.prepare`` returns), when preparation is deterministic: evaluation always
  (unless its pipeline says it is random), training when the pipeline declares it (``DataPipeline.deterministic``)
  or when the training pipeline equals the evaluation one and its preprocessor is deterministic (no augmentation).
  They are kept in memory when they fit the budget (``trainer.cache_memory_mb``, by default a quarter of the
  available memory), else in the on-disk cache (:mod:`polygraft.inputs.cache.disk`) when the source and the pipeline
  can fingerprint themselves and the pipeline is declared deterministic (or ``trainer.cache: disk`` asks for it).
  A cache on disk from an earlier run with the same key is reused; ``trainer.cache: disk`` writes one even when
  the examples would fit in memory.
* **decoded examples** (what the data source returns), when training augments (random preparation) and the source
  decodes files (``DataSource.storage == "files"``): kept in memory when they fit; the random transforms still
  run every epoch.

``collate`` always runs per batch, so random masking there stays random. The sampler is untouched: data order,
resume positions, DDP shards and length grouping are exactly those of an uncached run. Examples are computed in
DataLoader workers when the first few show that this pays. A data error found while preparing is raised right
away, naming the example, before training starts. The length of each kept example (``DataPipeline.length_of``)
is recorded on the way, so length grouping and longest-first evaluation never prepare anything twice.

Example:
    >>> from polygraft.interfaces import DataPipeline, ListSource
    >>> from polygraft.inputs.cache.plan import InputCache
    >>> class Double(DataPipeline):
    ...     random_prepare = False
    ...     def prepare(self, example): return {"x": example["x"] * 2}
    >>> cache = InputCache("auto")
    >>> split = cache.prepare(ListSource([{"x": 1}, {"x": 2}]), Double(), split="val", training=False, passes=3)
    >>> split.kind, split.dataset[1]
    ('memory', (1, {'x': 4}))
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from polygraft.fingerprint import versions
from polygraft.inputs.cache.compute import compute, sample_examples, sizeof
from polygraft.inputs.cache.disk import DiskCache, Unstorable, unstorable
from polygraft.inputs.cache.modes import cache_mode
from polygraft.inputs.datasets import CachedDataset, DecodedSource, PreparedDataset
from polygraft.inputs.workers import MAX_WORKERS, auto_workers, usable_cores
from polygraft.interfaces import DataPipeline, DataSource

PARALLEL_AFTER_S = 3.0
"""Compute in DataLoader workers when preparing everything would take longer than this in one process."""
PARALLEL_ITEM_S = 0.0005
"""... and one example takes at least this long (below it, moving examples between processes costs more)."""


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable``; 4 GiB when the system does not say)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return 4 * 2**30


@dataclass
class SplitInput:
    """What the loader of one split reads, and what was kept to get there."""

    split: str
    source: DataSource  # raw examples (the split's source, or its decoded copy)
    dataset: Dataset
    kind: str  # memory | disk | decoded | none
    decodes: bool  # reading an example decodes a file (or the source did not say)
    random: bool = False  # preparation is random (augmentation)
    count: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    workers: int = 0
    path: Path | None = None
    reused: bool = False
    note: str = ""
    lengths: list[int] | None = None  # of every source index (0 where this rank keeps nothing), when known

    def describe(self) -> str:
        """One line for the run log."""
        size = f"{self.nbytes / 2**20:,.1f} MB"
        work = f"{self.seconds:.1f} s" + (f" in {self.workers} workers" if self.workers else "")
        if self.kind == "memory":
            return f"{self.split}: {self.count:,} prepared examples kept in memory ({size}, prepared in {work})"
        if self.kind == "disk":
            how = "reused" if self.reused else f"written in {work}"
            return f"{self.split}: {self.count:,} prepared examples cached on disk at {self.path} ({size}, {how})"
        if self.kind == "decoded":
            return (f"{self.split}: {self.count:,} decoded examples kept in memory ({size}, read in {work}); "
                    f"{self.note}")
        return f"{self.split}: not cached ({self.note})"


class InputCache:
    """One trainer's input cache: the mode, the memory budget (shared by its splits) and what each split kept."""

    def __init__(self, mode: bool | str = "auto", *, memory_mb: int | None = None, rank: int = 0,
                 world_size: int = 1, local_world_size: int = 1, root: Path | None = None) -> None:
        self.mode = cache_mode(mode)
        local = max(1, local_world_size)
        self.budget = memory_mb * 2**20 if memory_mb is not None else available_memory() // (4 * local)
        self.rank, self.world_size = rank, world_size
        self.cores = max(1, usable_cores() // local)
        self.root = root
        self.splits: list[SplitInput] = []
        self.warnings: list[str] = []  # caches found damaged and rebuilt

    # ------------------------------------------------------------------------------------------ decisions
    def prepare(self, source: DataSource, pipeline: DataPipeline, *, split: str, training: bool, passes: int,
                reference: DataPipeline | None = None) -> SplitInput:
        """Keep what pays for ``source`` read ``passes`` times through ``pipeline``; ``reference`` is the evaluation
        pipeline (a training pipeline equal to it is as deterministic as evaluation)."""
        indices = list(range(len(source))) if training else list(range(self.rank, len(source), self.world_size))
        result = SplitInput(split, source, PreparedDataset(source, pipeline), "none", source.storage != "memory",
                            pipeline.deterministic() is False)
        if self.mode == "off":
            result.note = "trainer.cache is off"
        elif passes <= 1 and self.mode != "disk":
            result.note = "read once"
        else:
            reusable, disk_ok, why = self._reusable(source, pipeline, training=training, reference=reference)
            kept = self._prepared(source, pipeline, split, indices, disk_ok) if reusable else None
            if isinstance(kept, SplitInput):
                result = kept
            else:
                result.note = why if not reusable else kept or ""
                if training and source.storage == "files":
                    result = self._decoded(source, pipeline, split, result)
        self.splits.append(result)
        return result

    def _reusable(self, source: DataSource, pipeline: DataPipeline, *, training: bool,
                  reference: DataPipeline | None) -> tuple[bool, bool, str]:
        """(prepared examples may be kept, they may go to disk, why not)."""
        declared = pipeline.deterministic()
        preprocessor = getattr(pipeline, "preprocessor", None)
        steady = getattr(preprocessor, "deterministic", None) is True
        if declared is False:
            return False, False, "preparation is random (augmentation): prepared again every epoch"
        if not training:
            return True, declared is True or (self.mode == "disk" and steady), ""
        if source.storage is None:
            return False, False, (f"{type(source).__name__} does not declare its examples stable "
                                  "(DataSource.storage): prepared every epoch")
        if declared is True:
            return True, True, ""
        if steady and reference is not None:
            mine = pipeline.fingerprint()
            if mine is not None and mine == reference.fingerprint():
                return True, self.mode == "disk", ""
        return False, False, (f"{type(pipeline).__name__} does not declare deterministic preparation "
                              "(DataPipeline.random_prepare): prepared every epoch")

    # ------------------------------------------------------------------------------------------ prepared
    def _prepared(self, source: DataSource, pipeline: DataPipeline, split: str, indices: list[int],
                  disk_ok: bool) -> SplitInput | str:
        """The kept prepared examples, or why they were not kept."""
        if not indices:
            return "no examples for this process"
        positions = None if len(indices) == len(source) else {index: pos for pos, index in enumerate(indices)}
        disk, no_disk = self._disk(source, pipeline, indices, disk_ok)
        if disk is not None:
            store = disk.open()
            if disk.problem:
                self.warnings.append(f"input cache: {disk.path} cannot be used ({disk.problem}); rebuilding it")
            if store is not None:
                return SplitInput(split, source, CachedDataset(store, positions), "disk", False, False, len(store),
                                  store.nbytes, path=store.path, reused=True,
                                  lengths=_spread(indices, store.lengths, len(source)))
        started = time.perf_counter()
        sample, seconds = sample_examples(lambda i: pipeline.prepare(source[i]), indices)
        estimate = int(statistics.fmean(sizeof(item) for item in sample) * len(indices) * 1.05)
        odd = next((why for why in map(unstorable, sample) if why is not None), None)
        if disk is not None and odd is not None:
            disk, no_disk = None, f"examples hold {odd}, which the disk cache cannot store without pickling"
        to_disk = disk is not None and (self.mode == "disk" or estimate > self.budget)
        if not to_disk and estimate > self.budget:
            return (f"about {estimate / 2**20:,.0f} MB of prepared examples exceed the memory budget of "
                    f"{self.budget / 2**20:,.0f} MB (trainer.cache_memory_mb), and not on disk: {no_disk}")
        workers = self._parallel(seconds, len(indices))
        stream = compute(source, pipeline, indices, workers)
        kept: list[Any] = []
        measured: list[int | None] = []
        used = 0
        writer = disk.writer() if to_disk and disk is not None else None
        try:
            for item in stream:
                measured.append(pipeline.length_of(item))
                if writer is not None:
                    writer.add(item)
                    continue
                kept.append(item)
                used += sizeof(item)
                if used > self.budget:
                    if disk is None:
                        return (f"prepared examples exceed the memory budget of {self.budget / 2**20:,.0f} MB "
                                f"(trainer.cache_memory_mb), and not on disk: {no_disk}")
                    writer = disk.writer()
                    for earlier in kept:
                        writer.add(earlier)
                    kept, used = [], 0
            lengths = None if None in measured else [int(n) for n in measured]  # type: ignore[arg-type]
            if writer is not None:
                store = writer.commit(lengths=lengths)
                return SplitInput(split, source, CachedDataset(store, positions), "disk", False, False, len(store),
                                  store.nbytes, time.perf_counter() - started, workers, store.path,
                                  lengths=_spread(indices, lengths, len(source)))
        except Unstorable as exc:
            if writer is not None:
                writer.abort()
            return f"a prepared example holds {exc}, which the disk cache cannot store without pickling"
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        self.budget -= used
        return SplitInput(split, source, CachedDataset(kept, positions), "memory", False, False, len(kept), used,
                          time.perf_counter() - started, workers, lengths=_spread(indices, lengths, len(source)))

    def _disk(self, source: DataSource, pipeline: DataPipeline, indices: list[int],
              allowed: bool) -> tuple[DiskCache | None, str]:
        """The disk cache for this split, or why there is none."""
        if self.mode == "memory":
            return None, "trainer.cache is memory"
        if not allowed:
            return None, (f"{type(pipeline).__name__} does not declare deterministic preparation "
                          "(DataPipeline.random_prepare = False)")
        source_fp = source.fingerprint()
        if source_fp is None:
            return None, f"{type(source).__name__} cannot fingerprint its data (DataSource.fingerprint)"
        pipeline_fp = pipeline.fingerprint()
        if pipeline_fp is None:
            return None, f"the state of {type(pipeline).__name__} or its preprocessor cannot be fingerprinted"
        from polygraft.assets import cache_dir

        part = "all" if len(indices) == len(source) else f"shard {self.rank}/{self.world_size}"
        key = {"source": source_fp, "pipeline": pipeline_fp, "part": part,
               "versions": versions(source, pipeline, getattr(pipeline, "preprocessor", None))}
        return DiskCache(self.root or cache_dir("prepared"), key, size=len(indices), name=source.name or "data"), ""

    # ------------------------------------------------------------------------------------------ decoded
    def _decoded(self, source: DataSource, pipeline: DataPipeline, split: str, result: SplitInput) -> SplitInput:
        """Keep the decoded examples in memory when they fit (training transforms still run every epoch)."""
        indices = list(range(len(source)))
        if not indices:
            return result
        started = time.perf_counter()
        sample, seconds = sample_examples(lambda i: source[i], indices)
        estimate = int(statistics.fmean(sizeof(example) for example in sample) * len(indices) * 1.05)
        if estimate > self.budget:
            result.note += (f"; about {estimate / 2**20:,.0f} MB of decoded examples exceed the memory budget "
                            "(trainer.cache_memory_mb): decoded every epoch")
            return result
        workers = self._parallel(seconds, len(indices))
        examples = list(compute(source, None, indices, workers))
        used = sum(sizeof(example) for example in examples)
        self.budget -= used
        decoded = DecodedSource(source, examples)
        return SplitInput(split, decoded, PreparedDataset(decoded, pipeline), "decoded", False, result.random,
                          len(examples), used, time.perf_counter() - started, workers, note=result.note)

    # ------------------------------------------------------------------------------------------ helpers
    def _parallel(self, each_s: float, count: int) -> int:
        """Workers for computing everything once: every core this process has, when the work is long enough."""
        estimate_s = each_s * count
        if estimate_s < PARALLEL_AFTER_S or each_s < PARALLEL_ITEM_S or self.cores < 2:
            return 0
        return min(self.cores, MAX_WORKERS, max(2, math.ceil(estimate_s / PARALLEL_AFTER_S)))

    def workers(self, split: SplitInput) -> int:
        """The default ``num_workers`` for the loader of ``split`` (:func:`auto_workers`)."""
        return auto_workers(split.kind, decodes=split.decodes, random=split.random, cores=self.cores)

    def lines(self) -> list[str]:
        """What each split kept, for the run log."""
        if self.mode == "off":
            return ["input cache: off (trainer.cache=false): every example is prepared again each time it is read"]
        return [*self.warnings, *(f"input cache: {split.describe()}" for split in self.splits
                                  if split.note != "read once")]


def _spread(indices: Sequence[int], lengths: Sequence[int] | None, size: int) -> list[int] | None:
    """Lengths of the kept ``indices`` placed at their source positions (0 for examples this rank does not keep)."""
    if lengths is None or len(lengths) != len(indices):
        return None
    full = [0] * size
    for index, length in zip(indices, lengths):
        full[index] = int(length)
    return full
