"""What a run cost: wall time, throughput, trainable and total parameters, peak memory (for results.json).

Peak memory is the process's peak resident set on CPU (``ru_maxrss``) and the peak allocated CUDA memory on GPU.

Example:
    >>> import torch
    >>> from polygraft.training.usage import Usage
    >>> usage = Usage(torch.device("cpu"))
    >>> usage.start(torch.nn.Linear(3, 2))
    >>> sorted(usage.report(samples=10))[:3]
    ['memory/peak_mb', 'params/total', 'params/trainable']
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated on ``device``, else this process's peak resident memory, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


class Usage:
    """Measures one fit: call ``start`` when training starts, ``trainable_changed`` whenever ``requires_grad``
    flags change (gradual unfreezing), and ``report`` at the end."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started = 0.0
        self.seconds = 0.0
        self.setup_seconds = 0.0  # fit() called → training starts: preparing data, loaders, the model
        self.setup_cpu_seconds = 0.0
        self.validation_seconds = 0.0  # inside the training time: validations during the fit
        self.checkpoint_seconds = 0.0  # inside the training time: checkpoints written during the fit
        self._called = (time.perf_counter(), time.process_time())

    def fit_called(self) -> None:
        """``fit`` began: the set-up time is counted from here to :meth:`start`."""
        self._called = (time.perf_counter(), time.process_time())
        self.module: torch.nn.Module | None = None
        self.trained: set[int] = set()  # ids of parameters that were trainable at some point

    def start(self, module: torch.nn.Module) -> None:
        self.module = module
        self.trainable_changed()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.started = time.perf_counter()
        self.setup_seconds = self.started - self._called[0]
        self.setup_cpu_seconds = time.process_time() - self._called[1]

    def timed(self, part: str) -> _Timed:
        """``with usage.timed("validation"):`` adds the block's wall time to ``validation_seconds`` (or
        ``checkpoint_seconds``)."""
        return _Timed(self, f"{part}_seconds")

    def shares(self) -> str:
        """One line for the run log: how much of the training time went to validation and checkpoints."""
        seconds = self.seconds or (time.perf_counter() - self.started)
        parts = [f"{name} {value:.1f} s ({value / max(seconds, 1e-9):.0%})"
                 for name, value in (("validation", self.validation_seconds),
                                     ("checkpoints", self.checkpoint_seconds))]
        return f"time: {seconds:.1f} s of training, of which " + " and ".join(parts)

    def trainable_changed(self) -> None:
        assert self.module is not None
        self.trained.update(id(p) for p in self.module.parameters() if p.requires_grad)

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started

    def report(self, *, samples: int) -> dict[str, Any]:
        assert self.module is not None
        params = list(self.module.parameters())
        seconds = self.seconds or (time.perf_counter() - self.started)
        return {
            "train/wall_time_s": round(seconds, 3),
            "train/setup_s": round(self.setup_seconds, 3),
            "train/validation_s": round(self.validation_seconds, 3),
            "train/checkpoint_s": round(self.checkpoint_seconds, 3),
            "train/samples_per_s": round(samples / max(seconds, 1e-9), 3),
            "params/total": sum(p.numel() for p in params),
            "params/trainable": sum(p.numel() for p in params if id(p) in self.trained),
            "memory/peak_mb": round(peak_memory_mb(self.device), 1),
        }


class _Timed:
    """Adds the wall time of a ``with`` block to one of a :class:`Usage`'s counters."""

    def __init__(self, usage: Usage, counter: str) -> None:
        self.usage, self.counter, self.begun = usage, counter, 0.0

    def __enter__(self) -> None:
        self.begun = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        setattr(self.usage, self.counter, getattr(self.usage, self.counter) + time.perf_counter() - self.begun)
