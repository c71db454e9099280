"""Which weights train: ``full``, ``linear-probe`` and ``gradual-unfreeze``.

All three only flip ``requires_grad``. The trainer's optimizer holds every parameter of the module (frozen ones
simply get no gradient), so a group unfrozen later by ``gradual-unfreeze`` starts training at once.

Example:
    >>> import polygraft
    >>> from polygraft.finetune.freezing import LinearProbeStrategy
    >>> task = polygraft.create_task("classification", backbone="toy", label_names=["a", "b"])
    >>> LinearProbeStrategy().setup(task)
    >>> any(p.requires_grad for p in task.backbone.parameters()), all(p.requires_grad for p in task.head.parameters())
    (False, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from torch import nn

from polygraft.errors import ConfigError
from polygraft.interfaces.callback import Callback
from polygraft.interfaces.strategy import FinetuneStrategy

if TYPE_CHECKING:
    from polygraft.interfaces import TrainingModule

#: substring that marks LoRA adapter parameters (peft names them ``lora_A`` / ``lora_B`` / ``lora_embedding_*``)
ADAPTER_MARKER = "lora_"


def enable_adapters(module: nn.Module) -> int:
    """Make LoRA adapter parameters trainable again after a freeze; returns how many tensors it enabled."""
    count = 0
    for name, param in module.named_parameters():
        if ADAPTER_MARKER in name:
            param.requires_grad_(True)
            count += 1
    return count


class FullStrategy(FinetuneStrategy):
    """Every parameter trains (the default when a recipe names no strategy).

    Options:
        trainable_layers: train only the top N backbone layer groups (and the head); the lower groups stay
            frozen for the whole run (``{name: full, trainable_layers: 2}``). Default: all of them.
    """

    name = "full"
    order = 10
    conflicts_with = ("linear-probe", "gradual-unfreeze", "lora")

    def __init__(self, *, trainable_layers: int | None = None) -> None:
        if trainable_layers is not None and trainable_layers < 0:
            raise ConfigError(f"full: trainable_layers must be ≥ 0, got {trainable_layers}")
        self.trainable_layers = trainable_layers

    def setup(self, module: TrainingModule) -> None:
        module.requires_grad_(True)
        if self.trainable_layers is not None:
            groups = len(module.backbone.layer_groups())
            if self.trainable_layers > groups:
                raise ConfigError(f"full: trainable_layers={self.trainable_layers} but the backbone has only "
                                  f"{groups} layer groups; give 0..{groups}")
            module.backbone.freeze(self.trainable_layers)


class _BatchNormEval(Callback):
    """Keeps the frozen backbone's batch-norm layers in eval mode so their running statistics stay fixed."""

    def __init__(self) -> None:
        self.norms: list[nn.Module] = []

    def on_fit_start(self, trainer: Any) -> None:
        backbone = trainer.module.backbone
        self.norms = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._apply()

    def on_train_epoch_start(self, trainer: Any, epoch: int) -> None:
        self._apply()

    def on_train_step_start(self, trainer: Any, step: int) -> None:
        self._apply()  # the trainer may call module.train() again after validation

    def _apply(self) -> None:
        for norm in self.norms:
            norm.eval()


class LinearProbeStrategy(FinetuneStrategy):
    """The backbone is frozen (``backbone.freeze(0)``); only the head (and LoRA adapters, if any) trains.

    Combined with ``lora``: ``build_strategies`` runs linear-probe's setup first (``order`` 20 < 30), so the
    adapters LoRA injects afterwards stay trainable. Should the order be reversed (strategies built by hand),
    setup re-enables every ``lora_*`` parameter after freezing, so the result is the same either way.

    Options:
        freeze_batchnorm: keep the backbone's batch-norm layers in eval mode (running stats unchanged). Default true.
    """

    name = "linear-probe"
    order = 20
    conflicts_with = ("full", "gradual-unfreeze", "layer-wise-lr-decay")

    def __init__(self, *, freeze_batchnorm: bool = True) -> None:
        self.freeze_batchnorm = freeze_batchnorm

    def setup(self, module: TrainingModule) -> None:
        module.backbone.freeze(0)
        enable_adapters(module.backbone)

    def callbacks(self) -> list[Callback]:
        return [_BatchNormEval()] if self.freeze_batchnorm else []


class GradualUnfreezeCallback(Callback):
    """Unfreezes one more backbone layer group, from the top, at each milestone step."""

    def __init__(self, strategy: GradualUnfreezeStrategy) -> None:
        self.strategy = strategy
        self.milestones: list[int] | None = None
        self.stage = 0  # how many top layer groups are trainable
        self._applied = 0  # the stage the requires_grad flags were in when the trainer was last told (setup: 0)

    def on_fit_start(self, trainer: Any) -> None:
        groups = len(trainer.module.backbone.layer_groups())
        self.milestones = self.strategy.resolve_milestones(groups, int(trainer.max_steps))
        self._sync(trainer, force=True)

    def on_train_step_start(self, trainer: Any, step: int) -> None:
        self._sync(trainer)

    def _sync(self, trainer: Any, *, force: bool = False) -> None:
        if self.milestones is None:
            self.on_fit_start(trainer)
            return
        step = int(trainer.state.global_step)
        stage = sum(1 for milestone in self.milestones if milestone <= step)
        if stage == self.stage and not force:
            return
        self.stage = stage
        apply_stage(trainer.module.backbone, stage)
        if stage != self._applied:  # flags differ from what the optimizer / DDP wrapper last saw
            self._applied = stage
            trainer.on_trainable_changed()

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "milestones": list(self.milestones or [])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state.get("stage", 0))
        milestones = state.get("milestones")
        self.milestones = [int(m) for m in milestones] if milestones else None


def apply_stage(backbone: Any, stage: int) -> None:
    """Freeze the backbone except its top ``stage`` layer groups; at the last stage unfreeze it all."""
    groups = len(backbone.layer_groups())
    if stage >= groups:
        backbone.unfreeze()  # also parameters outside the layer groups
    else:
        backbone.freeze(stage)


class GradualUnfreezeStrategy(FinetuneStrategy):
    """ULMFiT-style gradual unfreezing: start with the head only, then unfreeze layer groups top-down.

    The backbone's ``layer_groups()`` (input → output) are unfrozen one at a time, last group first. When to
    unfreeze the next group (global optimizer steps, counted from the start of the run):

    * ``every_steps=N``: after N, 2N, 3N... steps (a float below 1 is a fraction of the run's max steps);
    * ``milestones=[s1, s2, ...]``: one group per milestone (ints are steps, floats below 1 fractions of max steps);
    * neither: evenly, so that the whole backbone trains from ``until`` (default 0.5) of the run on.

    Resume-safe: the stage follows from the global step, and the callback's state is checkpointed too.

    Example:
        >>> from polygraft.finetune.freezing import GradualUnfreezeStrategy
        >>> GradualUnfreezeStrategy(every_steps=10).resolve_milestones(groups=3, max_steps=100)
        [10, 20, 30]
    """

    name = "gradual-unfreeze"
    order = 40
    conflicts_with = ("full", "linear-probe", "lora")

    def __init__(self, *, every_steps: float | None = None, milestones: Sequence[float] | None = None,
                 until: float = 0.5) -> None:
        if every_steps is not None and milestones is not None:
            raise ConfigError("gradual-unfreeze: give either every_steps or milestones, not both")
        if every_steps is not None and every_steps <= 0:
            raise ConfigError(f"gradual-unfreeze: every_steps must be > 0, got {every_steps}")
        if not 0 < until <= 1:
            raise ConfigError(f"gradual-unfreeze: until must be a fraction in (0, 1], got {until}")
        if milestones is not None and (isinstance(milestones, str | bytes) or any(float(m) <= 0 for m in milestones)):
            raise ConfigError(f"gradual-unfreeze: milestones must be a list of positive steps, got {milestones!r}")
        self.every_steps = every_steps
        self.milestones = list(milestones) if milestones is not None else None
        self.until = until

    def setup(self, module: TrainingModule) -> None:
        module.backbone.freeze(0)

    def callbacks(self) -> list[Callback]:
        return [GradualUnfreezeCallback(self)]

    def resolve_milestones(self, groups: int, max_steps: int) -> list[int]:
        """The global steps at which group ``groups-1``, ``groups-2``... become trainable."""

        def to_step(value: float) -> int:
            if isinstance(value, float) and value < 1:
                return max(1, round(value * max_steps))
            return int(value)

        if self.milestones is not None:
            steps = [to_step(m) for m in self.milestones]
            if len(steps) > groups:
                raise ConfigError(
                    f"gradual-unfreeze: {len(steps)} milestones but the backbone has only {groups} layer groups; "
                    f"give at most {groups}"
                )
            if steps != sorted(set(steps)):
                raise ConfigError(f"gradual-unfreeze: milestones must increase strictly, got {steps}")
            return steps
        if self.every_steps is not None:
            every = to_step(self.every_steps)
            return [every * (i + 1) for i in range(groups)]
        span = self.until * max_steps / groups
        return [max(1, round(span * (i + 1))) for i in range(groups)]
