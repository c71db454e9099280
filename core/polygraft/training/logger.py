"""What a person sees while training: a progress bar (tqdm) and metrics.jsonl (+ TensorBoard when asked).

Example:
    >>> from polygraft.training.logger import TrainingLogger
    >>> logger = TrainingLogger(run=None, total_steps=10, show_progress=False)
    >>> logger.log({"step": 1, "train/loss": 0.3})
    >>> logger.history[-1]["train/loss"]
    0.3
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from polygraft.run import RunDirectory


class TrainingLogger:
    """Writes rows to the run directory and the progress bar; only created enabled on the main rank."""

    def __init__(self, run: RunDirectory | None, *, total_steps: int, show_progress: bool, initial_step: int = 0,
                 tensorboard: bool = False) -> None:
        self.run = run
        self.history: list[dict[str, Any]] = []
        self.bar = None
        if show_progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, desc="train")
        self.tensorboard = None
        if tensorboard and run is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print("tensorboard is not installed; pip install tensorboard (skipping)", file=sys.stderr)
            else:
                self.tensorboard = SummaryWriter(str(run.path / "tensorboard"))

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
        if self.tensorboard is not None:
            step = int(row.get("step", 0))
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float):
                    self.tensorboard.add_scalar(key, value, step)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.run is not None:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
