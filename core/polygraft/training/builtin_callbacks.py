"""Builtin callbacks: early stopping on a monitored metric, and keeping the best checkpoint.

Example:
    >>> from polygraft.training.builtin_callbacks import EarlyStopping
    >>> stop = EarlyStopping(monitor="val/accuracy", mode="max", patience=2)
    >>> [stop.improved(v) for v in (0.5, 0.6, 0.55)]
    [True, True, False]
"""

from __future__ import annotations

import math
import shutil
from typing import TYPE_CHECKING, Any

from polygraft.errors import ConfigError
from polygraft.training.callbacks import Callback

if TYPE_CHECKING:
    from polygraft.training.trainer import Trainer


class _Monitor:
    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        if mode not in ("min", "max"):
            raise ConfigError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best: float | None = None

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        better = self.best is None or (
            value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta
        )
        if better:
            self.best = value
        return better

    def read(self, metrics: dict[str, float]) -> float:
        if self.monitor not in metrics:
            raise ConfigError(
                f"monitored metric {self.monitor!r} is not among the validation metrics {sorted(metrics)}"
            )
        return metrics[self.monitor]


class EarlyStopping(_Monitor, Callback):
    """Stop when ``monitor`` has not improved for ``patience`` validations."""

    def __init__(self, monitor: str = "val/loss", mode: str = "min", patience: int = 3, min_delta: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = patience
        self.bad_validations = 0

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.improved(self.read(metrics)):
            self.bad_validations = 0
        else:
            self.bad_validations += 1
            if self.bad_validations >= self.patience:
                trainer.request_stop(f"early stopping: {self.monitor} did not improve for {self.patience} validations")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_validations = state["best"], state["bad_validations"]


class BestCheckpoint(_Monitor, Callback):
    """Copy the checkpoint of the best validation to ``checkpoints/best.pt``."""

    def __init__(self, monitor: str, mode: str = "max") -> None:
        super().__init__(monitor, mode)
        self.pending = False
        self.best_step: int | None = None

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.improved(self.read(metrics)):
            self.pending = True
            self.best_step = trainer.state.global_step

    def after_checkpoint(self, trainer: Trainer) -> None:
        """Called by the trainer right after it wrote ``last.pt``."""
        if self.pending and trainer.run is not None and trainer.run.enabled:
            shutil.copyfile(trainer.run.checkpoints / "last.pt", trainer.run.checkpoints / "best.pt")
            self.pending = False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state["best"], state["best_step"]


def create_early_stopping(**options: Any) -> EarlyStopping:
    """Factory registered as callback ``early-stopping``."""
    return EarlyStopping(**options)
