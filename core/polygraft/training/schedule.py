"""The shape of a run, decided once: how many optimizer steps, epochs and validations, and when to validate and
checkpoint.

A step is one chunk of ``grad_accum`` micro-batches (see :func:`chunk_sizes`); an epoch of ``B`` batches has
``ceil(B / grad_accum)`` steps, the last one partial when ``B`` is not a multiple of ``grad_accum`` (its loss is
averaged over the micro-batches it has; nothing carries into the next epoch, as in Lightning). Micro-batches are
read one at a time, so a step never holds more than one batch in memory.

When things happen (:class:`Schedule`):

* validation after a step when ``eval_every`` divides it, else at the end of each epoch;
* a checkpoint after a step when ``checkpoint_every`` divides it, else at each validation point (every
  ``eval_every`` steps, or each epoch end);
* at the end of training one more validation when the last step was not validated, and always a checkpoint.

Example:
    >>> from polygraft.training.config import TrainerConfig
    >>> from polygraft.training.schedule import StepPlan, chunk_sizes
    >>> plan = StepPlan.of(TrainerConfig(max_epochs=2, batch_size=8, grad_accum=2), train_size=40, world_size=1)
    >>> plan.batches_per_epoch, plan.steps_per_epoch, plan.max_steps, plan.epochs
    (5, 3, 6, 2)
    >>> chunk_sizes(5, 2)
    [2, 2, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def chunk_sizes(batches: int, grad_accum: int) -> list[int]:
    """The micro-batches of each optimizer step for an epoch (or the rest of one) of ``batches`` batches."""
    full, rest = divmod(max(0, batches), grad_accum)
    return [grad_accum] * full + ([rest] if rest else [])


@dataclass(frozen=True)
class StepPlan:
    """Batches and steps per epoch, planned steps and epochs, and how often each validation split is read."""

    batches_per_epoch: int
    steps_per_epoch: int
    max_steps: int
    epochs: int
    validations: int

    @classmethod
    def of(cls, config: Any, *, train_size: int, world_size: int) -> StepPlan:
        """The plan of a ``TrainerConfig`` on ``train_size`` training examples split over ``world_size`` ranks
        (the same arithmetic as the training DataLoader's ``len``); early stopping may end a run sooner."""
        per_rank = train_size // world_size if config.drop_last else math.ceil(train_size / world_size)
        batches = per_rank // config.batch_size if config.drop_last else math.ceil(per_rank / config.batch_size)
        batches = max(1, batches)
        steps_per_epoch = math.ceil(batches / config.grad_accum)
        if config.max_steps is None:
            epochs = config.max_epochs or 1
            steps = epochs * steps_per_epoch
        else:
            steps = config.max_steps
            epochs = math.ceil(steps / steps_per_epoch)
        validations = steps // config.eval_every + 1 if config.eval_every else epochs
        return cls(batches, steps_per_epoch, steps, epochs, validations)


@dataclass(frozen=True)
class Due:
    """What is due now."""

    validate: bool = False
    checkpoint: bool = False


@dataclass(frozen=True)
class Schedule:
    """The one owner of "validate now? checkpoint now?" (see the module docstring)."""

    eval_every: int | None
    checkpoint_every: int | None

    def after_step(self, step: int) -> Due:
        validation_point = bool(self.eval_every) and step % self.eval_every == 0
        periodic = bool(self.checkpoint_every) and step % self.checkpoint_every == 0
        return Due(validate=validation_point, checkpoint=periodic or (validation_point and not self.checkpoint_every))

    def after_epoch(self) -> Due:
        validation_point = not self.eval_every
        return Due(validate=validation_point, checkpoint=validation_point and not self.checkpoint_every)
