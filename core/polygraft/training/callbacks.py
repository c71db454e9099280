"""Trainer callbacks: a small protocol, run in list order, with ``state_dict`` for resume.

Example:
    >>> from polygraft.training.callbacks import Callback
    >>> class PrintLoss(Callback):
    ...     def on_train_batch_end(self, trainer, step, loss):
    ...         if step % 100 == 0:
    ...             print(step, loss)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polygraft.training.trainer import Trainer


class Callback:
    """Override any hook. ``trainer.module`` is the (unwrapped) training module; ``trainer.state`` the counters."""

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_train_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...
    def on_train_batch_start(self, trainer: Trainer, step: int) -> None: ...
    def on_before_optimizer_step(self, trainer: Trainer, step: int) -> None: ...
    def on_train_batch_end(self, trainer: Trainer, step: int, loss: float) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer, epoch: int) -> None: ...
    def on_validation_start(self, trainer: Trainer) -> None: ...
    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What to save in checkpoints (tensors allowed; loaded with weights_only=True)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
