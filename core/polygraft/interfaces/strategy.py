"""The FinetuneStrategy interface. Strategies combine: a recipe may list several (``[llrd, ema]``).

The trainer calls, in order, for every strategy in the recipe's list:
  1. ``setup(module)`` once, before the optimizer exists (freeze layers, wrap with LoRA...).
  2. ``param_groups(module, lr=..., weight_decay=...)``: the first strategy that returns groups (not None)
     decides the optimizer's parameter groups (LLRD does); otherwise the trainer's default groups
     (no decay on norms and biases) over every parameter are used (frozen ones get no gradient).
  3. ``callbacks()``: trainer callbacks the strategy needs (gradual unfreezing, EMA).
  4. ``example_outputs(module)`` once, after set-up: per-example outputs of a frozen model to compute before the
     first step and keep with the input cache (a distillation teacher's logits), or None (the default). Each
     training batch then carries them as ``batch["example_outputs"][name]`` (see :class:`ExampleOutputs`).
  5. ``training_loss(module, batch, output)`` for every training micro-batch, after the module's forward (under
     the same autocast): the loss to minimise; the default keeps ``output`` as it is. Validation and test never
     call it, so ``val/loss`` stays the task's own loss.
  6. ``finalize(module)`` once after training, before the model is saved (merge LoRA weights...).

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
    from polygraft.features import Batch
    from polygraft.interfaces.callback import Callback
    from polygraft.interfaces.outputs import ExampleOutputs
    from polygraft.interfaces.training_module import StepOutput, TrainingModule


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

    def example_outputs(self, module: TrainingModule) -> ExampleOutputs | None:
        """Outputs of a frozen model for every training example, computed once before training and kept with the
        input cache; ``None`` (the default) asks for none."""
        return None

    def training_loss(self, module: TrainingModule, batch: Batch, output: StepOutput) -> StepOutput:
        """The loss of one training micro-batch, given the module's own ``output`` (default: unchanged)."""
        return output

    def finalize(self, module: TrainingModule) -> None:
        """Called after training, before the model is saved."""
