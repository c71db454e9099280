"""DataLoader workers where they pay: how many, and how they are set up.

``trainer.num_workers: null`` (the default) picks a number from the machine and from what each split still has to
do per epoch (see :func:`auto_workers`); a number overrides it. The choice never depends on timings, so the same
recipe on the same machine always uses the same workers (augmentations drawn in workers depend on their number).

Each worker runs one torch thread: workers share the cores with the training step, whose OpenMP threads would
otherwise compete with them (a plugin whose library keeps its own thread pool sets it up in its preprocessor). With workers on a small machine, start Python with
``OMP_WAIT_POLICY=PASSIVE`` (it must be set before torch is imported) so idle OpenMP threads sleep instead of
spinning on a core a worker needs.

Example:
    >>> from polygraft.inputs.workers import auto_workers
    >>> auto_workers("memory", decodes=False, random=False, cores=16)
    0
    >>> auto_workers("none", decodes=True, random=False, cores=2)
    1
    >>> auto_workers("decoded", decodes=False, random=True, cores=16)
    8
"""

from __future__ import annotations

import os
from typing import Any

import torch

MAX_WORKERS = 8
"""The most workers ``num_workers: null`` ever chooses."""


def worker_limit(cores: int) -> int:
    """The most DataLoader workers a recipe may ask for: four per usable core (at least 8, at most 64). Each
    worker is a process holding a copy of the dataset; past this they only compete for the same cores."""
    return min(64, max(8, 4 * cores))


def check_workers(requested: int | None, cores: int | None = None) -> None:
    """Refuse a worker count this machine cannot use before any worker is started."""
    if requested is None:
        return
    cores = usable_cores() if cores is None else cores
    limit = worker_limit(cores)
    if requested > limit:
        from polygraft.errors import ConfigError

        raise ConfigError(f"trainer.num_workers={requested:,} is more than this machine can use ({cores} usable "
                          f"cores): use at most {limit}, or null to choose per split")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def auto_workers(kind: str, *, decodes: bool, random: bool, cores: int) -> int:
    """Workers for a split whose examples are ``kind`` (``memory``/``disk``: prepared once and kept; ``decoded``:
    decoded once, transformed every epoch; ``none``: read and prepared every epoch). ``decodes``: reading an
    example decodes a file (or the source did not say); ``random``: preparation augments at random. ``cores``:
    cores for this process (per rank under DDP).

    * kept in memory → 0: a batch is a few list look-ups and a ``collate``;
    * on ≤ 2 cores → 0, except 1 when files are decoded every epoch (the worker overlaps reading with compute);
    * otherwise up to ``cores - 1`` (at most 8) for decoding or augmenting, 2 for light work or a disk cache.
    """
    if kind == "memory":
        return 0
    if cores <= 2:
        return 1 if kind == "none" and decodes else 0
    if kind != "disk" and (random or (decodes and kind == "none")):
        return min(MAX_WORKERS, cores - 1)
    return min(2, cores - 1)


def loader_options(num_workers: int, *, persistent: bool, pin_memory: bool) -> dict[str, Any]:
    """DataLoader keyword arguments: persistent workers and a deeper prefetch queue only when there are workers;
    pinned memory only on CUDA (the caller says)."""
    options: dict[str, Any] = {"num_workers": num_workers, "pin_memory": pin_memory}
    if num_workers > 0:
        options.update(persistent_workers=persistent, prefetch_factor=4 if num_workers <= 2 else 2,
                       worker_init_fn=one_thread)
    return options


def one_thread(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one torch compute thread per worker."""
    torch.set_num_threads(1)
