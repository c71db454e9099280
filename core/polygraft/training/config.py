"""Trainer settings: one typed, documented dataclass (the ``trainer:`` section of a recipe).

Example:
    >>> from polygraft.training.config import TrainerConfig
    >>> TrainerConfig(max_steps=10, lr=1e-3).precision
    '32'
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from polygraft.errors import ConfigError

PRECISIONS = ("32", "bf16-mixed", "fp16-mixed")
SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class TrainerConfig:
    """How to train. Every field has a sensible default; ``max_steps`` or ``max_epochs`` bounds the run."""

    max_epochs: int | None = 1
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.01
    optimizer: str = "adamw"  # adamw | sgd
    momentum: float = 0.9  # sgd only
    schedule: str = "cosine"
    warmup_steps: int | None = None
    warmup_ratio: float = 0.0
    grad_accum: int = 1
    clip_grad_norm: float | None = 1.0
    precision: str = "32"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    compile: bool = False
    channels_last: bool = False
    num_workers: int = 0
    eval_every: int | None = None  # steps; None = at the end of each epoch
    log_every: int = 10
    checkpoint_every: int | None = None  # steps; None = each validation
    keep_checkpoints: int = 1
    seed: int = 0
    deterministic: bool = False
    skip_nonfinite: bool = False
    early_stopping: dict[str, Any] | None = None  # {monitor: val/accuracy, mode: max, patience: 3}
    monitor: str | None = None  # metric that picks the best checkpoint, e.g. val/accuracy
    monitor_mode: str = "max"
    progress: bool = True
    tensorboard: bool = False
    drop_last: bool = False
    group_by_length: bool = False  # batch similar lengths together (text, audio): less padding
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _coerce_numbers(self)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"trainer.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.max_steps is None and self.max_epochs is None:
            raise ConfigError("set trainer.max_steps or trainer.max_epochs (both are None)")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("trainer.batch_size and trainer.grad_accum must be ≥ 1")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"trainer.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.monitor_mode not in ("min", "max"):
            raise ConfigError(f"trainer.monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}")


def _coerce_numbers(config: TrainerConfig) -> None:
    """YAML 1.1 reads ``5e-5`` as a string: turn numeric strings into the field's number type, or explain."""
    for spec in fields(config):
        value = getattr(config, spec.name)
        kind = str(spec.type)
        if not isinstance(value, str) or not ("float" in kind or "int" in kind) or "str" in kind:
            continue
        try:
            number = float(value) if "float" in kind else int(value)
        except ValueError:
            raise ConfigError(f"trainer.{spec.name} must be a number, got {value!r}") from None
        setattr(config, spec.name, number)
