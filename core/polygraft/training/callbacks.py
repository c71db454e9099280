"""Trainer callbacks: a small protocol, run in list order, with ``state_dict`` for resume.

When each hook fires, for a run with gradient accumulation over ``A`` micro-batches:

* ``on_fit_start`` / ``on_fit_end``: once per ``fit``.
* ``on_train_epoch_start`` / ``on_train_epoch_end``: around each pass over the training data.
* ``on_train_step_start(step)``: once per optimizer step, before its first micro-batch.
* ``on_train_batch_end(batch, output)``: after each micro-batch's backward pass (``A`` times per step).
* ``on_before_optimizer_step(step)``: gradients are complete (unscaled, clipped), the weights not yet updated.
* ``on_train_step_end(step, loss, batch, output)``: once per optimizer step, after it. ``loss`` is the mean loss
  of the step's micro-batches on this process (a 0-dim tensor on the device: call ``float(loss)`` when you need
  the number, which waits for the device); ``batch``/``output`` are the step's last micro-batch.
* ``on_validation_start`` / ``on_validation_batch_end(batch, output)`` / ``on_validation_end(metrics)``: around
  each evaluation (``trainer.stage`` is ``"val"`` or ``"test"``). ``metrics`` may be extended in place.
* ``on_checkpoint_saved(path)``: right after a checkpoint was written (on the main process).

``batch`` holds ``inputs`` (what the backbone reads, on the device), targets, and ``meta`` (bookkeeping such as
``index`` of each example in its data source or ``truncated`` flags; kept on the CPU).

Example:
    >>> from polygraft.training.callbacks import Callback
    >>> class PrintLoss(Callback):
    ...     def on_train_step_end(self, trainer, step, loss, batch, output):
    ...         if step % 100 == 0:
    ...             print(step, float(loss))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from polygraft.features import Batch
    from polygraft.interfaces import StepOutput
    from polygraft.training.trainer import Trainer


class Callback:
    """Override any hook. ``trainer.module`` is the (unwrapped) training module; ``trainer.state`` the counters."""

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_train_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...
    def on_train_step_start(self, trainer: Trainer, step: int) -> None: ...
    def on_train_batch_end(self, trainer: Trainer, batch: Batch, output: StepOutput) -> None: ...
    def on_before_optimizer_step(self, trainer: Trainer, step: int) -> None: ...
    def on_train_step_end(self, trainer: Trainer, step: int, loss: torch.Tensor, batch: Batch,
                          output: StepOutput) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer, epoch: int) -> None: ...
    def on_validation_start(self, trainer: Trainer) -> None: ...
    def on_validation_batch_end(self, trainer: Trainer, batch: Batch, output: StepOutput) -> None: ...
    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_checkpoint_saved(self, trainer: Trainer, path: Path) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What to save in checkpoints (tensors allowed; loaded with weights_only=True)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
