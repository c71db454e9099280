"""Callbacks scoped to one branch of a fusion model: its preprocessor's counters and its strategies' callbacks.

A :class:`BranchCallback` wraps any callback so that it works on one branch as if that branch were the whole
model: its checkpoint entry is ``<branch>/<key>`` (two branches' ``TruncationCounter`` never clash), what it adds to
metrics and results is renamed ``val/<branch>_<name>`` (``val/text_truncated_examples``), its messages say which
branch, and with ``scope_batch`` it sees the branch's own bookkeeping (``meta`` of that branch, ``index`` of the
examples that have it). A strategy's callbacks see :class:`BranchTrainerView`, whose ``module`` is the branch's
view (its ``backbone`` is the branch).

Example:
    >>> from polygraft.builtin.callbacks import TruncationCounter
    >>> from polygraft.fusion.scoped import BranchCallback, scoped_name
    >>> BranchCallback("text", TruncationCounter()).checkpoint_key(), scoped_name("val/truncated_examples", "text")
    ('text/TruncationCounter', 'val/text_truncated_examples')
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polygraft.interfaces import Callback

if TYPE_CHECKING:
    import torch

    from polygraft.features import Batch
    from polygraft.interfaces import StepOutput, TrainerView, TrainingModule
    from polygraft.interfaces.callback import RankView, TrainerState
    from polygraft.run import RunDirectory


def scoped_name(name: str, branch: str) -> str:
    """``val/truncated_examples`` → ``val/<branch>_truncated_examples`` (a name without a stage gets the prefix)."""
    stage, sep, rest = name.rpartition("/")
    return f"{stage}{sep}{branch}_{rest}"


class BranchTrainerView:
    """The trainer as one branch's callback sees it: renamed results and messages, optionally another module."""

    def __init__(self, trainer: TrainerView, branch: str, module: Any = None) -> None:
        self._trainer, self._branch, self._module = trainer, branch, module

    @property
    def module(self) -> TrainingModule | None:
        return self._module if self._module is not None else self._trainer.module

    @property
    def state(self) -> TrainerState:
        return self._trainer.state

    @property
    def stage(self) -> str:
        return self._trainer.stage

    @property
    def max_steps(self) -> int:
        return self._trainer.max_steps

    @property
    def run(self) -> RunDirectory | None:
        return self._trainer.run

    @property
    def dist(self) -> RankView:
        return self._trainer.dist

    def request_stop(self, reason: str) -> None:
        self._trainer.request_stop(f"branch {self._branch}: {reason}")

    def add_results(self, values: Mapping[str, Any]) -> None:
        self._trainer.add_results({scoped_name(key, self._branch): value for key, value in values.items()})

    def message(self, text: str) -> None:
        self._trainer.message(f"branch {self._branch}: {text}")

    def on_trainable_changed(self) -> None:
        self._trainer.on_trainable_changed()


class BranchCallback(Callback):
    """``inner`` working on branch ``branch`` (see the module docstring)."""

    def __init__(self, branch: str, inner: Callback, *, scope_batch: bool = False, module: Any = None) -> None:
        self.branch, self.inner, self.scope_batch, self.module = branch, inner, scope_batch, module
        self.state_key = f"{branch}/{inner.checkpoint_key()}"

    def _view(self, trainer: TrainerView) -> Any:
        return BranchTrainerView(trainer, self.branch, self.module)

    def _batch(self, batch: Batch) -> Batch:
        """The batch with the branch's own bookkeeping as ``meta`` (``index``: the rows that have the branch)."""
        if not self.scope_batch:
            return batch
        meta = batch.get("meta") or {}
        present = (meta.get("present") or {}).get(self.branch)
        scoped = dict((meta.get("branches") or {}).get(self.branch) or {})
        index = meta.get("index")
        if index is not None and present is not None:
            scoped["index"] = index[present.to(getattr(index, "device", None))]
        return {**batch, "meta": scoped}

    def _metrics(self, trainer: TrainerView, metrics: dict[str, float], call: Any) -> None:
        own = dict(metrics)
        call(self._view(trainer), own)
        for key, value in own.items():  # what the inner callback added is renamed; what it changed stays
            if key not in metrics:
                metrics[scoped_name(key, self.branch)] = value
            elif metrics[key] != value:
                metrics[key] = value

    def on_fit_start(self, trainer: TrainerView) -> None:
        self.inner.on_fit_start(self._view(trainer))

    def on_train_epoch_start(self, trainer: TrainerView, epoch: int) -> None:
        self.inner.on_train_epoch_start(self._view(trainer), epoch)

    def on_train_step_start(self, trainer: TrainerView, step: int) -> None:
        self.inner.on_train_step_start(self._view(trainer), step)

    def on_train_batch_end(self, trainer: TrainerView, batch: Batch, output: StepOutput) -> None:
        self.inner.on_train_batch_end(self._view(trainer), self._batch(batch), output)

    def on_before_optimizer_step(self, trainer: TrainerView, step: int) -> None:
        self.inner.on_before_optimizer_step(self._view(trainer), step)

    def on_train_step_end(self, trainer: TrainerView, step: int, loss: torch.Tensor, batch: Batch,
                          output: StepOutput) -> None:
        self.inner.on_train_step_end(self._view(trainer), step, loss, self._batch(batch), output)

    def on_train_epoch_end(self, trainer: TrainerView, epoch: int) -> None:
        self.inner.on_train_epoch_end(self._view(trainer), epoch)

    def on_validation_start(self, trainer: TrainerView) -> None:
        self.inner.on_validation_start(self._view(trainer))

    def on_validation_batch_end(self, trainer: TrainerView, batch: Batch, output: StepOutput) -> None:
        self.inner.on_validation_batch_end(self._view(trainer), self._batch(batch), output)

    def on_validation_end(self, trainer: TrainerView, metrics: dict[str, float]) -> None:
        self._metrics(trainer, metrics, self.inner.on_validation_end)

    def on_checkpoint_saved(self, trainer: TrainerView, path: Path) -> None:
        self.inner.on_checkpoint_saved(self._view(trainer), path)

    def on_fit_end(self, trainer: TrainerView) -> None:
        self.inner.on_fit_end(self._view(trainer))

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


__all__ = ["BranchCallback", "BranchTrainerView", "scoped_name"]
