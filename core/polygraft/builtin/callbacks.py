"""Core's callbacks: early stopping and the best checkpoint (named in recipes' ``callbacks:``), and truncation
counting (returned by preprocessors that cut long inputs, from ``Preprocessor.callbacks()``; plugins reach it as
``polygraft.TruncationCounter``).

Example:
    >>> from polygraft.builtin.callbacks import EarlyStopping
    >>> stop = EarlyStopping(monitor="val/accuracy", patience=2)
    >>> stop.mode, [stop.improved(v) for v in (0.5, 0.6, 0.55)]
    ('max', [True, True, False])
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.errors import ConfigError
from polygraft.interfaces.callback import Callback

if TYPE_CHECKING:
    import torch

    from polygraft.features import Batch
    from polygraft.interfaces import StepOutput, TrainerView

MODES = ("min", "max")
LOWER_IS_BETTER = ("loss", "wer", "cer", "perplexity", "error", "eer", "rmse", "mae", "mse")


def infer_mode(monitor: str) -> str:
    """``min`` for losses and error rates (``val/loss``, ``val/wer``), ``max`` for everything else."""
    return "min" if any(word in monitor.rsplit("/", 1)[-1] for word in LOWER_IS_BETTER) else "max"


class Monitor:
    """A validation metric to watch and which direction is better (validated here, once for every callback)."""

    def __init__(self, monitor: str, mode: str | None = None, min_delta: float = 0.0) -> None:
        mode = mode or infer_mode(monitor)
        if mode not in MODES:
            raise ConfigError(f"mode must be 'min' or 'max' (or left out to infer it from {monitor!r}), got {mode!r}")
        if min_delta < 0:
            raise ConfigError(f"min_delta must be ≥ 0, got {min_delta}")
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


class EarlyStopping(Monitor, Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` validations.

    ``mode`` is ``min`` or ``max``; left out it is inferred from the name (losses and error rates: ``min``).
    """

    def __init__(self, monitor: str = "val/loss", mode: str | None = None, patience: int = 3,
                 min_delta: float = 0.0) -> None:
        super().__init__(monitor, mode, min_delta)
        if patience < 1:
            raise ConfigError(f"early-stopping: patience must be ≥ 1, got {patience}")
        self.patience = patience
        self.bad_validations = 0

    @property
    def state_key(self) -> str:  # type: ignore[override]
        return f"EarlyStopping[{self.monitor},{self.mode}]"

    def on_validation_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None:
        if trainer.stage != "val":
            return
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


class BestCheckpoint(Monitor, Callback):
    """Copy the checkpoint of the best validation by ``monitor`` to the run's best checkpoint file."""

    def __init__(self, monitor: str = "val/loss", mode: str | None = None) -> None:
        super().__init__(monitor, mode)
        self.pending = False
        self.best_step: int | None = None

    @property
    def state_key(self) -> str:  # type: ignore[override]
        return f"BestCheckpoint[{self.monitor},{self.mode}]"

    def on_validation_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None:
        if trainer.stage == "val" and self.improved(self.read(metrics)):
            self.pending = True
            self.best_step = trainer.state.global_step

    def on_checkpoint_saved(self, trainer: TrainerView, path: Path) -> None:
        if self.pending and trainer.run is not None:
            if path.is_dir():  # a distributed checkpoint (fsdp): every rank saved it, the main one copies it
                if trainer.dist.is_main:
                    best = trainer.run.best_checkpoint.with_suffix(".dcp")
                    shutil.rmtree(best, ignore_errors=True)
                    shutil.copytree(path, best)
            else:
                shutil.copyfile(path, trainer.run.best_checkpoint)
            self.pending = False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_step = state["best"], state["best_step"]


class TruncationCounter(Callback):
    """Counts examples whose input was cut at the model's length limit (``batch["meta"]["truncated"]``).

    Training counts distinct examples (by ``meta["index"]``), so a long row seen in 5 epochs counts once; it is
    reported as ``train/truncated_examples`` in ``results.json`` and in one log line. Each evaluation reports
    ``{stage}/truncated_examples``. Inputs that are never truncated (images) report nothing.
    """

    def __init__(self) -> None:
        self.train_rows: set[int] = set()
        self.seen_flags = False
        self._eval_count = 0
        self._eval_seen = False

    def on_train_batch_end(self, trainer: TrainerView, batch: Batch, output: StepOutput) -> None:
        flags, indices = _flags_and_indices(batch)
        if flags is None:
            return
        self.seen_flags = True
        if bool(flags.any()):
            self.train_rows.update(int(i) for i in indices[flags].tolist())

    def on_validation_start(self, trainer: TrainerView) -> None:
        self._eval_count, self._eval_seen = 0, False

    def on_validation_batch_end(self, trainer: TrainerView, batch: Batch, output: StepOutput) -> None:
        flags, _ = _flags_and_indices(batch)
        if flags is not None:
            self._eval_seen = True
            self._eval_count += int(flags.sum())

    def on_validation_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None:
        seen = trainer.dist.any(self._eval_seen)
        if seen:
            metrics[f"{trainer.stage}/truncated_examples"] = float(trainer.dist.sum(self._eval_count))

    def on_fit_end(self, trainer: TrainerView) -> None:
        if not trainer.dist.any(self.seen_flags):
            return
        rows = trainer.dist.union(self.train_rows)
        trainer.add_results({"train/truncated_examples": len(rows)})
        if rows:
            trainer.message(f"{len(rows)} distinct training examples were longer than the model's limit and were "
                            "truncated (raise max_length to keep them whole)")

    def state_dict(self) -> dict[str, Any]:
        return {"train_rows": sorted(self.train_rows), "seen_flags": self.seen_flags}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train_rows = {int(i) for i in state.get("train_rows", [])}
        self.seen_flags = bool(state.get("seen_flags", False))


def _flags_and_indices(batch: Batch) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    meta = batch.get("meta") or {}
    flags = meta.get("truncated")
    if flags is None:
        return None, None
    flags = flags.bool().cpu()
    return flags, meta.get("index")
