"""What a person sees while training: a progress bar (tqdm) and metrics.jsonl. Experiment trackers (TensorBoard,
MLflow) are callbacks (``callbacks: [tensorboard]``): :mod:`polygraft.builtin.trackers`.

Example:
    >>> from polygraft.training.logger import TrainingLogger
    >>> logger = TrainingLogger(run=None, total_steps=10, show_progress=False)
    >>> logger.log({"step": 1, "train/loss": 0.3})
    >>> logger.history[-1]["train/loss"]
    0.3
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any

import torch

from polygraft.run import RunDirectory


class TrainingLogger:
    """Writes rows to the run directory and the progress bar; only created enabled on the main rank."""

    def __init__(self, run: RunDirectory | None, *, total_steps: int, show_progress: bool,
                 initial_step: int = 0) -> None:
        self.run = run
        self.history: list[dict[str, Any]] = []
        self.bar = None
        if show_progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, desc="train")

    def advance(self) -> None:
        """One optimizer step done."""
        if self.bar is not None:
            self.bar.update(1)

    def log(self, row: Mapping[str, Any]) -> None:
        row = dict(row)
        self.history.append(row)
        if self.run is not None:
            self.run.log(row)
        if self.bar is not None:
            shown = {}
            for key, value in row.items():
                if key in ("train/loss", "train/lr", "train/samples_per_s") or key.startswith("val/"):
                    short = key.split("/", 1)[1]
                    shown[short] = f"{value:.3g}" if isinstance(value, float) else value
            self.bar.set_postfix(shown, refresh=False)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.run is not None:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class LossWindow:
    """Loss sums on the device (no sync per step): of the current step, and of the logging window."""

    def __init__(self, device: torch.device) -> None:
        self.step_sum = torch.zeros((), device=device)
        self.step_batches = 0
        self.log_sum = torch.zeros((), device=device)
        self.log_batches, self.log_samples, self.started = 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, samples: int) -> None:
        self.step_sum += loss
        self.step_batches += 1
        self.log_samples += samples

    def drop_step(self) -> None:
        self.step_sum.zero_()
        self.step_batches = 0

    def end_step(self) -> torch.Tensor:
        """The step's mean micro-batch loss (a device tensor), moved into the logging window."""
        mean = self.step_sum / max(1, self.step_batches)
        self.log_sum += self.step_sum
        self.log_batches += self.step_batches
        self.step_sum = torch.zeros_like(self.step_sum)
        self.step_batches = 0
        return mean

    def flush(self) -> tuple[float, float]:
        """(mean loss, samples/s) since the last flush; one device sync."""
        elapsed = time.perf_counter() - self.started
        loss = float(self.log_sum) / max(1, self.log_batches)
        samples_per_s = self.log_samples / max(elapsed, 1e-9)
        self.log_sum.zero_()
        self.log_batches, self.log_samples, self.started = 0, 0, time.perf_counter()
        return loss, samples_per_s
