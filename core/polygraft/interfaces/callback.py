"""Trainer callbacks: a small protocol, run in list order, with ``state_dict`` for resume, and the
:class:`TrainerView` they (and strategies) may use.

When each hook fires, for a run with gradient accumulation over ``A`` micro-batches (``trainer.grad_accum``):

* ``on_fit_start`` / ``on_fit_end``: once per ``fit``.
* ``on_train_epoch_start`` / ``on_train_epoch_end``: around each pass over the training data.
* ``on_train_step_start(step)``: once per optimizer step, before its first micro-batch.
* ``on_train_batch_end(batch, output)``: after each micro-batch's backward pass (``A`` times per step, fewer for
  the epoch's last step when the epoch's batches are not a multiple of ``A``: that partial step is taken, its
  loss averaged over the micro-batches it has, as Lightning does; nothing carries into the next epoch).
* ``on_before_optimizer_step(step)``: gradients are complete (unscaled, clipped), the weights not yet updated.
* ``on_train_step_end(step, loss, batch, output)``: once per optimizer step, after it. ``loss`` is the mean loss
  of the step's micro-batches on this process (a 0-dim tensor on the device: call ``float(loss)`` when you need
  the number, which waits for the device); ``batch``/``output`` are the step's last micro-batch.
* ``on_validation_start`` / ``on_validation_batch_end(batch, output)`` / ``on_validation_end(metrics)``: around
  each evaluation (``trainer.stage`` is ``"val"`` or ``"test"``). ``metrics`` may be extended in place.
* ``on_checkpoint_saved(path)``: right after a checkpoint was written (on the main process).
* ``on_results_saved(results)``: the run directory holds its final files (``results.json``, the model, the
  plots); ``results`` is what ``results.json`` holds (main process, runs with a run directory only). Experiment
  trackers copy the final results and plots from here.

Validation runs after a step when ``trainer.eval_every`` divides it, else at the end of each epoch, and once more at
the end of training when the last step was not validated; a checkpoint follows every validation point unless
``trainer.checkpoint_every`` sets its own period, and one more is written at the end.

``batch`` holds ``inputs`` (what the backbone reads, on the device), targets, and ``meta`` (bookkeeping such as
``index`` of each example in its data source or ``truncated`` flags; kept on the CPU).

A callback's state is saved under :attr:`Callback.state_key` (its class name unless it says otherwise), so two
callbacks of one class need distinct keys to be restored.

Example:
    >>> from polygraft.interfaces import Callback
    >>> class PrintLoss(Callback):
    ...     def on_train_step_end(self, trainer, step, loss, batch, output):
    ...         if step % 100 == 0:
    ...             print(step, float(loss))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from polygraft.features import Batch
    from polygraft.interfaces.training_module import StepOutput, TrainingModule
    from polygraft.run import RunDirectory


class TrainerState(Protocol):
    """The counters of a fit (saved in every checkpoint)."""

    global_step: int
    epoch: int
    batches_in_epoch: int
    samples_seen: int


class RankView(Protocol):
    """The process's place in a distributed run, and reductions every rank must call together."""

    rank: int
    world_size: int

    @property
    def enabled(self) -> bool: ...
    @property
    def is_main(self) -> bool: ...
    def sum(self, value: float, device: Any = None) -> float: ...
    def any(self, flag: bool) -> bool: ...
    def union(self, values: set[int]) -> set[int]: ...


class TrainerView(Protocol):
    """What a callback or a strategy may use of the trainer that calls it; nothing else is part of the contract.

    ``module`` is the unwrapped training module, ``state`` the counters, ``stage`` ``"train"``, ``"val"`` or
    ``"test"``, ``max_steps`` the planned optimizer steps, ``run`` the run directory (``None`` without one),
    ``dist`` the ranks.
    """

    @property
    def module(self) -> TrainingModule | None: ...
    @property
    def state(self) -> TrainerState: ...
    @property
    def stage(self) -> str: ...
    @property
    def max_steps(self) -> int: ...
    @property
    def run(self) -> RunDirectory | None: ...
    @property
    def dist(self) -> RankView: ...

    def request_stop(self, reason: str) -> None:
        """Stop after the current step (early stopping)."""

    def add_results(self, values: Mapping[str, Any]) -> None:
        """Extra entries for ``results.json``."""

    def message(self, text: str) -> None:
        """One line for the person watching (main process only)."""

    def on_trainable_changed(self) -> None:
        """Call after changing ``requires_grad`` during training (re-wraps DDP, recounts trainable parameters)."""


class Callback:
    """Override any hook. ``trainer.module`` is the (unwrapped) training module; ``trainer.state`` the counters."""

    #: the key this callback's ``state_dict`` is saved under in checkpoints (default: the class name)
    state_key: str = ""

    def on_fit_start(self, trainer: TrainerView) -> None: ...
    def on_train_epoch_start(self, trainer: TrainerView, epoch: int) -> None: ...
    def on_train_step_start(self, trainer: TrainerView, step: int) -> None: ...
    def on_train_batch_end(self, trainer: TrainerView, batch: Batch, output: StepOutput) -> None: ...
    def on_before_optimizer_step(self, trainer: TrainerView, step: int) -> None: ...
    def on_train_step_end(self, trainer: TrainerView, step: int, loss: torch.Tensor, batch: Batch,
                          output: StepOutput) -> None: ...
    def on_train_epoch_end(self, trainer: TrainerView, epoch: int) -> None: ...
    def on_validation_start(self, trainer: TrainerView) -> None: ...
    def on_validation_batch_end(self, trainer: TrainerView, batch: Batch, output: StepOutput) -> None: ...
    def on_validation_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None: ...
    def on_checkpoint_saved(self, trainer: TrainerView, path: Path) -> None: ...
    def on_fit_end(self, trainer: TrainerView) -> None: ...
    def on_results_saved(self, trainer: TrainerView, results: dict[str, Any]) -> None: ...

    def checkpoint_key(self) -> str:
        """``state_key``, or the class's qualified name when the callback sets none."""
        return self.state_key or type(self).__qualname__

    def state_dict(self) -> dict[str, Any]:
        """What to save in checkpoints (tensors allowed; loaded with weights_only=True)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
