"""torch.distributed under torchrun: process group set-up and reductions. Single process otherwise.

The rank variables torchrun sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``) are read here and
nowhere else.

Launch the same recipe on N processes with ``torchrun --nproc-per-node N -m polygraft finetune recipe.yaml``:
gloo on CPU, NCCL on CUDA.

Example:
    >>> from polygraft.training.distributed import DistributedContext
    >>> DistributedContext.from_environment().world_size
    1
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class DistributedContext:
    """Rank information (world size 1 when not launched by torchrun)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1  # processes on this machine (they share its cores and memory)
    initialized_here: bool = False

    @classmethod
    def from_environment(cls) -> DistributedContext:
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return cls()
        world = int(os.environ["WORLD_SIZE"])
        return cls(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), world,
                   int(os.environ.get("LOCAL_WORLD_SIZE", world)))

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
