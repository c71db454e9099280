"""Stopping cleanly when the scheduler says so: SIGTERM (SLURM, Kubernetes, spot instances) and SIGUSR1 (SLURM's
``--signal`` before the time limit) end a fit at the next step boundary with a checkpoint.

While a fit runs in the main thread, :func:`stop_on_signals` replaces the handlers of those signals with one that
only records the signal; the loop checks the record after each optimizer step, saves ``checkpoints/last.pt`` and
returns with ``FitResult.stop_reason`` naming the signal. ``polygraft finetune`` then prints how to resume and exits
with :data:`EXIT_CODES` (143 for SIGTERM, 138 for SIGUSR1: 128 + the signal number, what a shell reports for a
process the signal killed). The previous handlers come back when the fit returns. A second signal of the same kind
while stopping is ignored: the checkpoint is being written.

Example:
    >>> import os, signal
    >>> from polygraft.training.signals import stop_on_signals
    >>> with stop_on_signals() as received:
    ...     os.kill(os.getpid(), signal.SIGTERM)
    ...     received.name
    'SIGTERM'
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s is not None)
EXIT_CODES = {s.name: 128 + int(s) for s in (*STOP_SIGNALS, signal.SIGINT)}
"""Exit status of a run stopped by each signal (``polygraft finetune`` / ``pretrain``)."""


class Received:
    """The stop signal received so far (``name`` is ``None`` until one arrives)."""

    def __init__(self) -> None:
        self.name: str | None = None

    def __bool__(self) -> bool:
        return self.name is not None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Received]:
    """Record SIGTERM / SIGUSR1 instead of dying while the block runs (main thread only; elsewhere a no-op)."""
    received = Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def record(number: int, frame: Any) -> None:
        if received.name is None:
            received.name = signal.Signals(number).name

    previous = {s: signal.signal(s, record) for s in STOP_SIGNALS}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
