"""The FinetuneStrategy interface. Strategies combine: a recipe may list several (``[llrd, ema]``).

The trainer calls, in order, for every strategy in the recipe's list:
  1. ``setup(module)`` once, before the optimizer exists (freeze layers, wrap with LoRA...).
  2. ``param_groups(module, lr=..., weight_decay=...)``: the first strategy that returns groups (not None)
     decides the optimizer's parameter groups (LLRD does); otherwise the trainer's default groups
     (no decay on norms and biases) over every parameter are used (frozen ones get no gradient).
  3. ``callbacks()``: trainer callbacks the strategy needs (gradual unfreezing, EMA).
  4. ``finalize(module)`` once after training, before the model is saved (merge LoRA weights...).

Recipes build their strategies with :func:`polygraft.finetune.build_strategies`, which sorts them by ``order``
(lower first; ties keep recipe order) and rejects pairs named in ``conflicts_with``. Callbacks a strategy returns
see the trainer through :class:`~polygraft.interfaces.TrainerView`.

Example:
    >>> from polygraft.interfaces import FinetuneStrategy
    >>> class Nothing(FinetuneStrategy):
    ...     name = "nothing"
    >>> Nothing().callbacks()
    []
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polygraft.interfaces.callback import Callback
    from polygraft.interfaces.training_module import TrainingModule


class FinetuneStrategy:
    """Base class: every step is a no-op by default."""

    name: str = ""
    #: application order when combined (lower first): setup, callbacks and finalize all follow it
    order: int = 50
    #: names of strategies this one cannot be combined with (checked both ways by build_strategies)
    conflicts_with: tuple[str, ...] = ()

    def setup(self, module: TrainingModule) -> None:
        """Prepare the module before the optimizer is built."""

    def param_groups(self, module: TrainingModule, *, lr: float, weight_decay: float) -> list[dict[str, Any]] | None:
        """Optimizer parameter groups, or None to let the trainer build its default groups."""
        return None

    def callbacks(self) -> list[Callback]:
        """Callbacks this strategy needs during training."""
        return []

    def finalize(self, module: TrainingModule) -> None:
        """Called after training, before the model is saved."""
