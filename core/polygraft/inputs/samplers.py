"""Samplers: the order in which a loader reads examples, resumable mid-epoch and split across DDP ranks.

* :class:`ResumableSampler`: DistributedSampler order (seeded by ``seed + epoch``) that can skip the samples of
  batches already trained on, so a resumed run sees exactly the batches an uninterrupted one would.
* :class:`ShardSampler`: evaluation order, each rank its own shard, longest first when lengths are known.
* :class:`LengthGroupedSampler`: length-grouped batching (below).

Length-grouped batching: batches of examples with similar lengths, so dynamic padding adds little.

Text (and audio) batches are padded to their longest example. With random batches of short reviews most of a
batch is padding; grouping similar lengths removes most of it without changing what an epoch contains.

The order is the one transformers' ``LengthGroupedSampler`` popularised, made resumable and DDP-aware: shuffle
(seeded by ``seed + epoch``), cut into mega-batches of ``megabatch_factor`` global batches, sort each mega-batch
by length (longest first), cut it into global batches (``batch_size × world_size`` examples, one per-rank batch
each) and shuffle the order of the full global batches; a last partial one stays last. Rank ``r`` takes
examples ``r, r + W, …`` of that order, so each rank's batch comes from the same length group.

Example:
    >>> from polygraft.inputs.samplers import LengthGroupedSampler
    >>> lengths = [5, 50, 6, 49, 7, 48, 8, 47]
    >>> sampler = LengthGroupedSampler(lengths, batch_size=2, rank=0, world_size=1, seed=0, drop_last=False)
    >>> batches = [list(sampler)[i:i + 2] for i in range(0, 8, 2)]
    >>> all(abs(lengths[a] - lengths[b]) <= 2 for a, b in batches)
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler, Sampler


class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for one process) that can skip the samples of batches already trained on.

    The order depends only on ``seed`` and the epoch, so a resumed run sees exactly the batches an
    uninterrupted run would have seen.
    """

    def __init__(self, dataset_size: int, *, rank: int, world_size: int, shuffle: bool, seed: int,
                 drop_last: bool) -> None:
        super().__init__(range(dataset_size),  # type: ignore[arg-type]  # a sized range is all it reads
                         num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.skip = 0

    def set_position(self, epoch: int, skip_samples: int) -> None:
        self.set_epoch(epoch)
        self.skip = skip_samples

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


class ShardSampler(Sampler[int]):
    """Evaluation order: rank r takes examples r, r + W, r + 2W... — no padding, so metrics gathered across
    ranks count every example exactly once (DistributedSampler repeats some to even out the shards). Given
    per-example ``lengths`` it visits its shard longest first, so padded batches hold similar lengths."""

    def __init__(self, dataset_size: int, *, rank: int, world_size: int, lengths: Sequence[int] | None = None) -> None:
        shard = range(rank, dataset_size, world_size)
        # with lengths: longest first, so batches hold similar lengths (metrics do not depend on the order)
        self.indices: Sequence[int] = shard if lengths is None else sorted(shard, key=lambda i: -lengths[i])

    def set_position(self, epoch: int, skip_samples: int) -> None:
        """Evaluation always starts from the beginning."""

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class LengthGroupedSampler(ResumableSampler):
    """A :class:`ResumableSampler` whose epoch order puts examples of similar length into the same batch."""

    def __init__(self, lengths: Sequence[int], *, batch_size: int, rank: int, world_size: int, seed: int,
                 drop_last: bool, megabatch_factor: int = 50) -> None:
        super().__init__(len(lengths), rank=rank, world_size=world_size, shuffle=True, seed=seed,
                         drop_last=drop_last)
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.megabatch_factor = megabatch_factor

    def grouped_order(self) -> list[int]:
        """The epoch's global order (all ranks), before padding or trimming to equal shards."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        permutation = torch.randperm(len(self.lengths), generator=generator).tolist()
        global_batch = self.batch_size * self.num_replicas
        megabatch = global_batch * self.megabatch_factor
        ordered: list[int] = []
        for start in range(0, len(permutation), megabatch):
            ordered.extend(sorted(permutation[start : start + megabatch], key=lambda i: -self.lengths[i]))
        groups = [ordered[start : start + global_batch] for start in range(0, len(ordered), global_batch)]
        partial = groups.pop() if groups and len(groups[-1]) < global_batch else None
        shuffled = [groups[i] for i in torch.randperm(len(groups), generator=generator).tolist()]
        if partial is not None:
            shuffled.append(partial)
        return [index for group in shuffled for index in group]

    def __iter__(self) -> Iterator[int]:
        order = self.grouped_order()
        if self.drop_last:
            order = order[: self.total_size]
        else:  # repeat from the start to give every rank the same number of samples, as DistributedSampler does
            order += (order * math.ceil(self.total_size / max(1, len(order))))[: self.total_size - len(order)]
        return iter(order[self.rank : self.total_size : self.num_replicas][self.skip :])

