"""torch.distributed under torchrun: process group set-up, samplers, reductions. Single process otherwise.

Launch the same recipe on N processes with ``torchrun --nproc-per-node N -m polygraft finetune recipe.yaml``:
gloo on CPU, NCCL on CUDA.

Example:
    >>> from polygraft.training.distributed import DistributedContext
    >>> DistributedContext.from_environment().world_size
    1
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Sampler


@dataclass
class DistributedContext:
    """Rank information (world size 1 when not launched by torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialized_here: bool = False

    @classmethod
    def from_environment(cls) -> DistributedContext:
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, device: torch.device) -> None:
        """Initialise the process group (gloo on CPU, NCCL on CUDA) when torchrun started several ranks."""
        if not self.enabled or dist.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        self.initialized_here = True

    def teardown(self) -> None:
        """Drain and destroy the process group this context created.

        The barrier makes every rank's pending collectives finish first: gloo's worker threads free finished
        work (and its tensors) themselves, and doing that while the main thread destroys the group can deadlock
        on the GIL at interpreter exit. Drop DDP wrappers before calling this.
        """
        if self.initialized_here and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
            self.initialized_here = False

    def mean(self, value: float, device: torch.device) -> float:
        """Average a Python number across ranks."""
        return self.sum(value, device) / self.world_size

    def sum(self, value: float, device: torch.device | None = None) -> float:
        """Sum a Python number across ranks (every rank must call it)."""
        if not self._active():
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=device or self._collective_device())
        dist.all_reduce(tensor)
        return float(tensor.item())

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank (every rank must call it)."""
        return self.sum(1.0 if flag else 0.0) > 0

    def union(self, values: set[int]) -> set[int]:
        """The union of every rank's set of integers (every rank must call it)."""
        if not self._active():
            return set(values)
        shards: list[Any] = [None] * self.world_size
        dist.all_gather_object(shards, sorted(values))
        return {int(v) for shard in shards for v in shard}

    def _active(self) -> bool:
        return self.enabled and dist.is_available() and dist.is_initialized()

    def _collective_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


class ResumableSampler(DistributedSampler):
    """DistributedSampler (also for one process) that can skip the samples of batches already trained on.

    The order depends only on ``seed`` and the epoch, so a resumed run sees exactly the batches an
    uninterrupted run would have seen.
    """

    def __init__(self, dataset_size: int, *, rank: int, world_size: int, shuffle: bool, seed: int,
                 drop_last: bool) -> None:
        super().__init__(range(dataset_size), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
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
