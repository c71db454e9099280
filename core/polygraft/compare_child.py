"""One ``polygraft compare`` child run, supervised: its own process group, its output in the run's ``train.log``, a
time limit, and signals passed on.

* A child runs in its own session, so a terminal's Ctrl-C reaches compare alone; compare passes SIGINT and
  SIGTERM on to the child's process group, waits for it to save its checkpoint (a trainer stops at the next step
  boundary on SIGTERM), and then stops: :class:`Interrupted`. Re-running the same comparison resumes it.
* ``timeout``: a child that runs longer is sent SIGTERM (it checkpoints), then SIGKILL after ``grace`` seconds, and
  counts as failed; the other variants go on. A child that hangs (a data file that blocks) cannot stall the rest.
* ``watch``: called every ``poll_s`` seconds while the child runs; when it returns True the child is stopped the same
  way (SIGTERM to its group, then SIGKILL after ``grace``) and the result says ``stopped`` (``polygraft tune`` prunes
  trials so).

Example:
    >>> import sys, tempfile, pathlib
    >>> from polygraft.compare_child import run_child
    >>> log = pathlib.Path(tempfile.mkdtemp()) / "train.log"
    >>> result = run_child([sys.executable, "-c", "print('hello')"], log_file=log, timeout=60)
    >>> result.returncode, "hello" in result.output, result.timed_out
    (0, True, False)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORWARDED: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.2


@dataclass
class ChildResult:
    """How a child ended: its exit code (negative: the signal that ended it), its output, whether it ran out of
    time."""

    returncode: int
    output: str
    timed_out: bool = False
    stopped: bool = False  # ``watch`` asked for the stop


class Interrupted(Exception):
    """compare itself received SIGINT or SIGTERM; the child was stopped and may be resumed."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def run_child(command: list[str], *, log_file: Path, timeout: float | None = None, grace: float = 60.0,
              env: dict[str, str] | None = None, watch: Callable[[], bool] | None = None,
              poll_s: float = POLL_S) -> ChildResult:
    """Run ``command`` to its end (or its time limit), its output written to ``log_file``."""
    received: list[int] = []
    previous: dict[int, Any] = {}

    def record(number: int, frame: Any) -> None:
        received.append(number)

    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8", errors="replace") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env or dict(os.environ),
                                   start_new_session=True)
        try:
            for number in FORWARDED:
                previous[number] = signal.signal(number, record)
        except ValueError:  # not the main thread: no handlers, no forwarding
            previous.clear()
        started, timed_out, stopped = time.monotonic(), False, False
        try:
            while process.poll() is None:
                if received:
                    _stop(process, received[0], grace)
                    raise Interrupted(signal.Signals(received[0]).name)
                if timeout is not None and time.monotonic() - started > timeout:
                    timed_out = True
                    _stop(process, signal.SIGTERM, grace)
                    break
                if watch is not None and watch():
                    stopped = True
                    _stop(process, signal.SIGTERM, grace)
                    break
                time.sleep(poll_s)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            if process.poll() is None:  # an error in compare itself: never leave the child behind
                _stop(process, signal.SIGTERM, grace=5.0)
        log.write(f"\nexit code {process.returncode}\n")
    return ChildResult(process.returncode, log_file.read_text(encoding="utf-8", errors="replace"), timed_out, stopped)


def _stop(process: subprocess.Popen[Any], number: int, grace: float) -> None:
    """Send ``number`` to the child's process group, wait up to ``grace`` seconds, then kill what is left."""
    try:
        os.killpg(process.pid, number)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
